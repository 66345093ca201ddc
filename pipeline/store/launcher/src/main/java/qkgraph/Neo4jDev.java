package qkgraph;

import java.io.IOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
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
 * default database accepts transactions, so a parent process can wait for it. Any startup failure
 * instead ends the process with exit code 2 after one line {@code neo4j-dev: <what went wrong>} on
 * stderr, and no ready line.
 *
 * <p>Options: --port N (required), --http-port N (also start the HTTP connector there; with the
 * Neo4j Browser jar on the classpath the server then serves Browser at /browser/), --home DIR (a
 * new or empty directory becomes a store marked as ours; a directory we marked before is reused, so
 * the graph survives a restart; without it a fresh temporary store), --pagecache SIZE_MB (default
 * 64), --setting NAME=VALUE (any Neo4j setting, repeatable; an unknown name or bad value fails the
 * start, as Neo4j validates them strictly), --auth (enable auth; user neo4j's password then comes from
 * NEO4J_DEV_PASSWORD), --exit-on-stdin-close.
 */
public final class Neo4jDev {

    /** File that marks a --home as a store this launcher created (and may therefore reuse). */
    static final String HOME_MARKER = ".qkgraph-neo4j-home";

    private Neo4jDev() {}

    public static void main(String[] args) throws Exception {
        int port = -1;
        int httpPort = -1;
        Path home = null;
        long pageCacheMb = 64;
        boolean auth = false;
        boolean exitOnStdinClose = false;
        Map<String, String> settings = new LinkedHashMap<>();
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--port" -> port = Integer.parseInt(value(args, ++i));
                    case "--http-port" -> httpPort = Integer.parseInt(value(args, ++i));
                    case "--home" -> home = Path.of(value(args, ++i));
                    case "--pagecache" -> pageCacheMb = Long.parseLong(value(args, ++i));
                    case "--setting" -> {
                        String setting = value(args, ++i);
                        int eq = setting.indexOf('=');
                        if (eq < 1) {
                            fail("--setting needs NAME=VALUE (got " + setting + ")");
                        }
                        settings.put(setting.substring(0, eq).strip(), setting.substring(eq + 1).strip());
                    }
                    case "--auth" -> auth = true;
                    case "--exit-on-stdin-close" -> exitOnStdinClose = true;
                    default -> fail("unknown argument: " + args[i]);
                }
            }
        } catch (NumberFormatException e) {
            fail("not a number: " + e.getMessage());
        }
        if (port < 1 || port > 65535) {
            fail("--port must be given, 1..65535 (got " + port + ")");
        }
        if (httpPort != -1 && (httpPort < 1 || httpPort > 65535 || httpPort == port)) {
            fail("--http-port must be 1..65535 and differ from --port (got " + httpPort + ")");
        }
        String password = System.getenv("NEO4J_DEV_PASSWORD");
        if (auth && (password == null || password.length() < 8)) {
            // Checked before the store is touched: Neo4j itself would only refuse it after startup.
            fail("the password must have at least 8 characters");
        }
        // Checked up front so the message names the port; Neo4j's own bind error is a stack trace.
        requireFreePort(port, "--port");
        if (httpPort != -1) {
            requireFreePort(httpPort, "--http-port");
        }
        home = prepareHome(home);

        DatabaseManagementService dbms;
        try {
            var builder = new DatabaseManagementServiceBuilder(home)
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                    // Browser connects to the address the discovery endpoint advertises.
                    .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(HttpConnector.enabled, httpPort != -1)
                    .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                    .setConfig(GraphDatabaseSettings.pagecache_memory, pageCacheMb * 1024L * 1024L);
            if (!settings.isEmpty()) {
                // The builder takes settings by name only from a neo4j.conf-style file (validated strictly).
                Path conf = Files.createTempFile("qkgraph-neo4j-", ".conf");
                StringBuilder lines = new StringBuilder();
                settings.forEach((k, v) -> lines.append(k).append('=').append(v).append('\n'));
                Files.writeString(conf, lines);
                builder.loadPropertiesFromFile(conf);
                conf.toFile().deleteOnExit();
            }
            if (httpPort != -1) {
                builder.setConfig(HttpConnector.listen_address, new SocketAddress("127.0.0.1", httpPort))
                        .setConfig(HttpConnector.advertised_address, new SocketAddress("127.0.0.1", httpPort));
            }
            dbms = builder.build();
        } catch (Throwable e) {
            fail("Neo4j did not start: " + rootCause(e));
            return;
        }

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
            setPassword(dbms, password);
        }
        String http = httpPort == -1 ? "" : " http=http://127.0.0.1:" + httpPort;
        System.out.println("QKGRAPH_NEO4J_READY bolt://127.0.0.1:" + port + " home=" + home + http);
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

    /** The home to use: a temporary one, a new/empty one we then mark, or one we marked before. */
    private static Path prepareHome(Path home) throws IOException {
        if (home == null) {
            return Files.createTempDirectory("qkgraph-neo4j-");
        }
        home = home.toAbsolutePath();
        if (Files.exists(home) && !Files.isDirectory(home)) {
            fail("--home " + home + " is a file, not a directory");
        }
        if (Files.isDirectory(home) && !isEmptyDir(home)) {
            if (!Files.isRegularFile(home.resolve(HOME_MARKER))) {
                // Never write a store into someone else's files.
                fail("--home " + home + " is not empty and not a qkgraph Neo4j home; give a new or empty directory");
            }
            return home;
        }
        Files.createDirectories(home);
        Files.writeString(home.resolve(HOME_MARKER), "Neo4j store created by qkgraph neo4j-dev; reused by --home.\n");
        return home;
    }

    /** Sets user neo4j's password; on a reused home it may already be this one, which Neo4j refuses to "change". */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        var system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        try (var tx = system.beginTx()) {
            tx.execute("ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            tx.commit();
        } catch (RuntimeException e) {
            if (!String.valueOf(rootCause(e)).contains("cannot be the same")) {
                dbms.shutdown();
                fail("setting the password failed: " + rootCause(e));
            }
        }
    }

    private static void requireFreePort(int port, String option) {
        try (var socket = new ServerSocket()) {
            socket.setReuseAddress(true);
            socket.bind(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        } catch (BindException e) {
            fail(option + " " + port + ": port already in use on 127.0.0.1");
        } catch (IOException e) {
            fail(option + " " + port + ": cannot listen there: " + e.getMessage());
        }
    }

    private static String rootCause(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
        return message.replace('\n', ' ').strip();
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            fail(args[i - 1] + " needs a value");
        }
        return args[i];
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
        System.err.flush();
        // halt, not exit: no shutdown hook may run and print more after the one-line message.
        Runtime.getRuntime().halt(2);
    }
}
