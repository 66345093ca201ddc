package qkgraph;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Starts an embedded Neo4j Community DBMS with a Bolt connector on 127.0.0.1 and keeps it running
 * until SIGTERM/SIGINT (or stdin closing, with --exit-on-stdin-close).
 *
 * <p>Prints exactly one line starting with {@code QKGRAPH_NEO4J_READY bolt://127.0.0.1:PORT} once the
 * default database accepts transactions, so a parent process can wait for it.
 *
 * <p>Options: --port N (required), --home DIR (must not exist or be empty: a fresh store per start),
 * --pagecache SIZE_MB (default 64), --auth (enable auth; the initial password then comes from
 * NEO4J_DEV_PASSWORD), --exit-on-stdin-close.
 */
public final class Neo4jDev {

    private Neo4jDev() {}

    public static void main(String[] args) throws Exception {
        int port = -1;
        Path home = null;
        long pageCacheMb = 64;
        boolean auth = false;
        boolean exitOnStdinClose = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--home" -> home = Path.of(args[++i]);
                case "--pagecache" -> pageCacheMb = Long.parseLong(args[++i]);
                case "--auth" -> auth = true;
                case "--exit-on-stdin-close" -> exitOnStdinClose = true;
                default -> fail("unknown argument: " + args[i]);
            }
        }
        if (port <= 0 || port > 65535) {
            fail("--port must be given, 1..65535");
        }
        if (home == null) {
            home = Files.createTempDirectory("qkgraph-neo4j-");
        } else if (Files.exists(home) && !isEmptyDir(home)) {
            // A fresh home per start: a reused store would leak data between test sessions.
            fail("--home " + home + " exists and is not empty; give a new directory");
        }
        Files.createDirectories(home);

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCacheMb * 1024L * 1024L)
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // SIGTERM/SIGINT run shutdown hooks: close the store cleanly so no recovery is needed.
            dbms.shutdown();
            stopped.countDown();
        }, "neo4j-dev-shutdown"));

        // Wait until the default database answers before announcing readiness.
        var db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        while (!db.isAvailable(1000)) {
            // keep waiting: isAvailable blocks up to the timeout itself
        }
        if (auth) {
            String password = System.getenv("NEO4J_DEV_PASSWORD");
            if (password == null || password.length() < 8) {
                fail("--auth needs NEO4J_DEV_PASSWORD of at least 8 characters");
            }
            var system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
            try (var tx = system.beginTx()) {
                tx.execute("ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED",
                        java.util.Map.of("pw", password));
                tx.commit();
            }
        }
        System.out.println("QKGRAPH_NEO4J_READY bolt://127.0.0.1:" + port + " home=" + home);
        System.out.flush();

        if (exitOnStdinClose) {
            Thread watcher = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // drain
                    }
                } catch (IOException ignored) {
                    // treat as closed
                }
                System.exit(0);
            }, "stdin-watcher");
            watcher.setDaemon(true);
            watcher.start();
        }
        stopped.await();
    }

    private static boolean isEmptyDir(Path p) throws IOException {
        if (!Files.isDirectory(p)) {
            return false;
        }
        try (var s = Files.list(p)) {
            return s.findAny().isEmpty();
        }
    }

    private static void fail(String message) {
        System.err.println("neo4j-dev: " + message);
        System.exit(2);
    }
}
