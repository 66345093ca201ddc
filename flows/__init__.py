"""Prefect flows and deployments for qkgraph; each task wraps a plain library function from pipeline."""
