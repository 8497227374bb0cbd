package io.flover.cli;

import io.flover.worker.server.MetricsEndpoint;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;
import java.io.IOException;
import java.util.function.BooleanSupplier;
import picocli.CommandLine.Option;

/** Where a server process exposes its metrics, shared by {@code serve}, {@code coordinator} and {@code worker}. */
final class MetricsFlags {
    @Option(names = "--metrics-port", paramLabel = "PORT",
            description = "serve Prometheus metrics at http://HOST:PORT/metrics (default: no metrics endpoint)")
    Integer port;

    private MetricsEndpoint endpoint;

    /** Starts the endpoint if asked for, and logs where it is. */
    void start(String host) throws IOException {
        if (port != null) {
            Flags.requirePort("--metrics-port", port);
            endpoint = MetricsEndpoint.start(host, port);
            Flags.log("metrics on http://" + host + ":" + endpoint.port() + "/metrics");
        }
    }

    /** Serves {@code ready} at the endpoint's {@link MetricsEndpoint#READY_PATH}, if there is an endpoint. */
    void readiness(BooleanSupplier ready) {
        if (endpoint != null) {
            endpoint.readiness(ready);
        }
    }

    /** The endpoint's registry, or one that keeps nothing. */
    MeterRegistry registry() {
        return endpoint == null ? new CompositeMeterRegistry() : endpoint.registry();
    }

    void stop() {
        if (endpoint != null) {
            endpoint.close();
        }
    }
}
