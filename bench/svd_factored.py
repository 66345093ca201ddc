"""Factored vs dense SVD of every head's QK circuit at GPT-2-small shapes (12 layers x 12 heads, d_model 768).

Dense: form W_QK = W_Q W_K^T (768 x 768) and take its SVD. Factored: QR of the two 768 x 64 factors and
the SVD of the 64 x 64 core (pipeline.circuit.FactoredQK). Weights are random (seeded) at the real
shapes, with GPT-2's init scale; timing does not depend on the values. Prints the figures and ends with
one JSON line: ratio = dense time / factored time, max_error = worst singular-value or reconstruction error.

    .venv/bin/python bench/svd_factored.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pipeline.model.circuit import FactoredQK

LAYERS, HEADS, D_MODEL, D_HEAD = 12, 12, 768, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    heads = [
        (
            torch.randn(D_MODEL, D_HEAD, generator=gen, dtype=torch.float64) * 0.02,
            torch.randn(D_MODEL, D_HEAD, generator=gen, dtype=torch.float64) * 0.02,
        )
        for _ in range(LAYERS * HEADS)
    ]

    def dense() -> list[torch.Tensor]:
        return [torch.linalg.svd(A @ B.T)[1][:D_HEAD] for A, B in heads]

    def factored() -> list[torch.Tensor]:
        return [FactoredQK(A, B).sigma for A, B in heads]

    def best_of(fn) -> tuple[float, list[torch.Tensor]]:
        times, out = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_factored, s_factored = best_of(factored)
    t_dense, s_dense = best_of(dense)
    sigma_err = max(float((a - b).abs().max()) for a, b in zip(s_dense, s_factored))
    recon_err = 0.0
    for A, B in heads[::LAYERS]:  # reconstruction checked on one head per layer (dense product is the slow part)
        f = FactoredQK(A, B)
        recon_err = max(recon_err, float((f.reconstruct() - A @ B.T).abs().max()))
    max_error = max(sigma_err, recon_err)
    print(
        f"heads: {LAYERS * HEADS} ({LAYERS} layers x {HEADS} heads), d_model {D_MODEL}, d_head {D_HEAD}, float64, "
        f"torch threads {torch.get_num_threads()}, best of {args.repeats}"
    )
    print(f"dense SVD of W_Q W_K^T : {t_dense * 1e3:9.1f} ms  ({t_dense / len(heads) * 1e3:.2f} ms/head)")
    print(f"factored SVD           : {t_factored * 1e3:9.1f} ms  ({t_factored / len(heads) * 1e3:.2f} ms/head)")
    print(f"ratio dense/factored   : {t_dense / t_factored:9.1f}x")
    print(f"max |sigma_dense - sigma_factored| = {sigma_err:.2e}; max reconstruction error = {recon_err:.2e}")
    print(
        json.dumps(
            {
                "ratio": round(t_dense / t_factored, 2),
                "max_error": max_error,
                "dense_s": round(t_dense, 4),
                "factored_s": round(t_factored, 4),
                "heads": len(heads),
            }
        )
    )


if __name__ == "__main__":
    main()
