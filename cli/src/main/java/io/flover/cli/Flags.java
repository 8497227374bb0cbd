package io.flover.cli;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.time.ZonedDateTime;

/** Checks of flag values and the log line format, shared by the server commands. */
final class Flags {
    static final String LOG_FORMAT_PROPERTY = "java.util.logging.SimpleFormatter.format";
    static final String LOG_FORMAT = "%1$tF %1$tT.%1$tL %4$s %3$s: %5$s%6$s%n";

    private Flags() {
    }

    static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    static void requirePort(String flag, int port) {
        require(port >= 0 && port < 65536, flag + " must be in [0, 65535], got " + port);
    }

    /** java.util.logging (the scheduler, gRPC, Hazelcast) logs one line per record, unless set already. */
    static void oneLineLogs() {
        if (System.getProperty(LOG_FORMAT_PROPERTY) == null) {
            System.setProperty(LOG_FORMAT_PROPERTY, LOG_FORMAT);
        }
    }

    /**
     * A log line on stderr in the format of the process's other logs. Not through java.util.logging itself: its
     * own shutdown hook may close the handlers before ours logs the shutdown.
     */
    static void log(String message) {
        System.err.printf(LOG_FORMAT, ZonedDateTime.now(), null, "flover", "INFO", message, "");
    }

    /** The address others reach this process at: {@code advertise}, else {@code host} unless it is a wildcard. */
    static String advertised(String advertise, String host) throws UnknownHostException {
        if (advertise != null) {
            return advertise;
        }
        InetAddress bind = InetAddress.getByName(host);
        return bind.isAnyLocalAddress() ? InetAddress.getLocalHost().getHostAddress() : host;
    }

    /** Seconds a stopping server gives the requests in flight, from {@code --drain-timeout}. */
    static Duration drainTimeout(long seconds) {
        require(seconds >= 0, "--drain-timeout must not be negative, got " + seconds);
        return Duration.ofSeconds(seconds);
    }

    /** On SIGTERM or Ctrl-C: runs {@code stop}, then exits 0, since a server that stopped as asked has succeeded. */
    static void onShutdown(Runnable stop) {
        Runtime.getRuntime().addShutdownHook(Thread.ofPlatform().name("flover-shutdown").unstarted(() -> {
            log("shutting down");
            stop.run();
            log("stopped");
            Runtime.getRuntime().halt(0); // the JVM would exit with 128 + the signal
        }));
    }
}
