package io.flover.openai;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

/**
 * A Server-Sent Events response written without blocking the thread that produces the events: events queue while
 * a write is in flight and go out together when it completes. The queue is bounded: a client that reads nothing
 * while {@code limitBytes} wait for longer than {@code stallTimeout} is dropped ({@code onGone} runs, which
 * cancels its generation), so a slow reader never makes the server buffer without bound. A write that fails
 * (the client left) does the same.
 */
final class SseStream {
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8);

    private final Response response;
    private final Callback done;
    private final Runnable onGone;
    private final long limitBytes;
    private final long stallNanos;
    private final List<byte[]> queue = new ArrayList<>();
    private long queuedBytes;
    private long fullSince = -1;
    private boolean writing;
    private boolean ending;
    private boolean over;

    SseStream(Response response, Callback done, Runnable onGone, long limitBytes, Duration stallTimeout) {
        this.response = response;
        this.done = done;
        this.onGone = onGone;
        this.limitBytes = limitBytes;
        this.stallNanos = stallTimeout.toNanos();
        response.setStatus(200);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
    }

    /** Queues {@code data: json}. */
    synchronized void send(String json) {
        enqueue(("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8));
    }

    /** Queues {@code data: [DONE]} and ends the response once everything queued is written. */
    synchronized void end() {
        enqueue(DONE);
        ending = true;
        flush();
    }

    private void enqueue(byte[] event) {
        if (over || ending) {
            return;
        }
        queue.add(event);
        queuedBytes += event.length;
        if (queuedBytes > limitBytes && writing) {
            long now = System.nanoTime();
            if (fullSince < 0) {
                fullSince = now;
            } else if (now - fullSince > stallNanos) {
                fail(new TimeoutException("the client read nothing for " + Duration.ofNanos(stallNanos).toSeconds()
                        + " s with " + queuedBytes + " bytes waiting"));
                return;
            }
        }
        flush();
    }

    private void flush() {
        if (writing || over) {
            return;
        }
        if (queue.isEmpty()) {
            if (ending) {
                over = true;
                response.write(true, ByteBuffer.allocate(0), done);
            }
            return;
        }
        ByteBuffer batch = ByteBuffer.allocate((int) queuedBytes);
        queue.forEach(batch::put);
        queue.clear();
        queuedBytes = 0;
        fullSince = -1;
        writing = true;
        boolean last = ending;
        if (last) {
            over = true;
        }
        response.write(last, batch.flip(), last ? done : Callback.from(this::written, this::failed));
    }

    private synchronized void written() {
        writing = false;
        flush();
    }

    private synchronized void failed(Throwable why) {
        fail(why);
    }

    private void fail(Throwable why) {
        if (over) {
            return;
        }
        over = true;
        queue.clear();
        done.failed(why);
        onGone.run();
    }
}
