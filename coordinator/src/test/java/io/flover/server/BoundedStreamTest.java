package io.flover.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class BoundedStreamTest {
    /** A transport whose client reads when told to. */
    private static final class Client implements BoundedStream.Transport<String> {
        final List<String> received = new ArrayList<>();
        volatile boolean ready = true;

        @Override
        public boolean ready() {
            return ready;
        }

        @Override
        public void write(String message) {
            received.add(message);
        }
    }

    private static BoundedStream<String> stream(Client client, Duration stall, Runnable onStall) {
        return new BoundedStream<>(client, 3, stall, String::concat, onStall);
    }

    @Test
    void aReadyClientGetsEachMessageAtOnce() {
        Client client = new Client();
        BoundedStream<String> s = stream(client, Duration.ofMinutes(1), () -> { });
        s.send("a");
        s.send("b");
        assertEquals(List.of("a", "b"), client.received);
        assertEquals(0, s.buffered());
    }

    @Test
    void aSlowClientsMessagesWaitUpToTheBoundThenMergeAndComeInOrder() {
        Client client = new Client();
        client.ready = false;
        BoundedStream<String> s = stream(client, Duration.ofMinutes(1), () -> { });
        for (String m : List.of("a", "b", "c", "d", "e")) {
            s.send(m);
        }
        assertEquals(3, s.buffered(), "bounded: later messages merge into the last");
        s.end(() -> client.received.add("end"));
        assertEquals(List.of(), client.received, "nothing is written while the client is not ready");

        client.ready = true;
        s.drain();
        assertEquals(List.of("a", "b", "cde", "end"), client.received);
        s.send("late");
        assertEquals(List.of("a", "b", "cde", "end"), client.received, "nothing after the end");
    }

    @Test
    void aClientThatReadsNothingWithItsBufferFullIsGivenUpOnceAndItsBufferDropped() throws Exception {
        Client client = new Client();
        client.ready = false;
        CountDownLatch stalled = new CountDownLatch(1);
        BoundedStream<String> s = stream(client, Duration.ofMillis(50), stalled::countDown);
        s.send("a");
        s.send("b");
        assertFalse(stalled.await(200, TimeUnit.MILLISECONDS), "a buffer that is not full is no stall");
        s.send("c");
        assertTrue(stalled.await(5, TimeUnit.SECONDS));
        assertEquals(0, s.buffered());
        client.ready = true;
        s.send("d");
        s.drain();
        assertEquals(List.of(), client.received);
    }

    @Test
    void readingRestartsTheStallClock() throws Exception {
        Client client = new Client();
        client.ready = false;
        CountDownLatch stalled = new CountDownLatch(1);
        BoundedStream<String> s = stream(client, Duration.ofMillis(1000), stalled::countDown);
        for (String m : List.of("a", "b", "c")) {
            s.send(m);
        }
        Thread.sleep(100); // well inside the timeout, even on a loaded machine
        client.ready = true;
        s.drain(); // the client read everything before the timeout
        client.ready = false;
        assertFalse(stalled.await(1500, TimeUnit.MILLISECONDS));
        assertEquals(List.of("a", "b", "c"), client.received);
    }

    @Test
    void theEndWaitsForAWriteInFlight() {
        Client client = new Client();
        BoundedStream<String> s = stream(client, Duration.ofMinutes(1), () -> { });
        s.send("a");
        client.ready = false; // "a" is still being written, as an HTTP write is until its callback
        s.end(() -> client.received.add("end"));
        assertEquals(List.of("a"), client.received, "the end must not write while a write is in flight");
        client.ready = true;
        s.drain();
        assertEquals(List.of("a", "end"), client.received);
    }
}
