package io.flover.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.worker.server.MetricsEndpoint;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Iterator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@code /metrics} while a request streams and after it ends: the serving meters move, in the Prometheus format;
 * {@code /ready} follows the server's readiness.
 */
class MetricsTest {
    private final HttpClient http = HttpClient.newHttpClient();

    @Test
    void scrapingDuringAGenerationSeesTheMetersMove() throws Exception {
        try (MetricsEndpoint endpoint = MetricsEndpoint.start("127.0.0.1", 0);
             FloverServer server = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                     "127.0.0.1", 0, 2, 1, 16 << 20, SchedulerConfig.defaults(new Policy.Fusion())),
                     new ServingMetrics(endpoint.registry()), FloverServer.Security.NONE)) {
            String before = scrape(endpoint);
            assertEquals(0, value(before, "flover_generation_tokens_total"));
            assertEquals(0, value(before, "flover_num_requests_running"));
            assertTrue(before.contains("jvm_memory_used_bytes"), "JVM metrics are there too");

            ManagedChannel channel = ServerTesting.channel(server);
            int[] prompt = ServerTesting.cases("llama-tiny-f32").getFirst().prompt();
            Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel)
                    .generate(ServerTesting.ids(prompt, 200).build());
            stream.next(); // the first token is out; 199 to go
            // Counters and histograms only grow: whatever the request has done by the scrape, these hold.
            String during = scrape(endpoint);
            assertEquals(1, value(during, "flover_time_to_first_token_seconds_count"), during);
            assertTrue(value(during, "flover_generation_tokens_total") >= 1, during);
            assertTrue(value(during, "flover_step_duration_seconds_count") >= 1, during);
            while (stream.hasNext()) {
                stream.next();
            }
            ServerTesting.assertPoolWhole(server.replicas());

            assertThrows(StatusRuntimeException.class, () -> GenerationGrpc.newBlockingStub(channel)
                    .generate(ServerTesting.ids(new int[] {1, 2, 3}, 254).build()).next()); // past the context
            String after = scrape(endpoint);
            assertEquals(200, value(after, "flover_generation_tokens_total"));
            assertEquals(prompt.length, value(after, "flover_prompt_tokens_total"));
            assertEquals(199, value(after, "flover_inter_token_latency_seconds_count"));
            assertEquals(1, value(after, "flover_e2e_request_latency_seconds_count"));
            assertEquals(1, value(after, "flover_request_queue_time_seconds_count"));
            assertEquals(1, value(after, "flover_requests_finished_total{reason=\"length\"}"));
            assertEquals(1, value(after, "flover_requests_rejected_total{status=\"INVALID_ARGUMENT\"}"));
            assertEquals(0, value(after, "flover_num_requests_running"));
            assertTrue(after.contains("flover_time_to_first_token_seconds_bucket{le="), "a histogram, with buckets");
            ServerTesting.close(channel);
        }
    }

    @Test
    void readinessFollowsTheServersHealthInPlainHttp() throws Exception {
        try (MetricsEndpoint endpoint = MetricsEndpoint.start("127.0.0.1", 0);
             FloverServer server = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                     "127.0.0.1", 0, 1, 1, 4 << 20, SchedulerConfig.defaults(new Policy.Fusion())),
                     new ServingMetrics(endpoint.registry()), FloverServer.Security.NONE)) {
            assertEquals(404, get(endpoint, MetricsEndpoint.READY_PATH).statusCode(), "not served until asked for");
            endpoint.readiness(server::serving);
            HttpResponse<String> ready = get(endpoint, MetricsEndpoint.READY_PATH);
            assertEquals(200, ready.statusCode());
            assertEquals("ready\n", ready.body());
            server.setServing(false); // what the coordinator does when its last group goes, and a drain
            HttpResponse<String> notReady = get(endpoint, MetricsEndpoint.READY_PATH);
            assertEquals(503, notReady.statusCode());
            assertEquals("not ready\n", notReady.body());
            server.setServing(true);
            assertEquals(200, get(endpoint, MetricsEndpoint.READY_PATH).statusCode());
            server.close();
            assertEquals(503, get(endpoint, MetricsEndpoint.READY_PATH).statusCode(), "closed: never ready again");
            server.setServing(true);
            assertEquals(503, get(endpoint, MetricsEndpoint.READY_PATH).statusCode(), "closed: never ready again");
        }
    }

    private HttpResponse<String> get(MetricsEndpoint endpoint, String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + endpoint.port() + path)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private String scrape(MetricsEndpoint endpoint) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + endpoint.port()
                + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode());
        return r.body();
    }

    /** The value of the sample {@code name} (with its labels, if it has some), or 0 if there is none yet. */
    private static double value(String exposition, String name) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(?:\\{[^}]*})? (\\S+)$").matcher(exposition);
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }
}
