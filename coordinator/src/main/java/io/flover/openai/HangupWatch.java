package io.flover.openai;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CancellationException;
import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;

/**
 * Notices a client that closes its connection while its answer is computed. An HTTP/1.1 server reads nothing from a
 * connection while it handles a request on it, so otherwise a client that left is noticed only at the next write:
 * for a completion that is not streamed, its whole answer. The watch asks the connection to say when it turns
 * readable. The client has sent its whole request, and may send nothing more before the answer (no pipelining after
 * a POST, RFC 9112 9.3.2), so what comes is the end of the connection (or a client that breaks the protocol, whose
 * connection is closed): {@code onGone} runs. The watch ends before the response completes, so that the connection
 * reads its next request as usual.
 */
final class HangupWatch implements Callback {
    private final AbstractEndPoint endPoint;
    private final Runnable onGone;
    /** Whether the connection holds this watch's read interest. */
    private boolean armed;
    private boolean over;

    private HangupWatch(AbstractEndPoint endPoint, Runnable onGone) {
        this.endPoint = endPoint;
        this.onGone = onGone;
    }

    /**
     * Watches {@code request}'s connection, whose body has been read, until the response completes; returns the
     * callback to complete the response with in place of {@code callback}.
     */
    static Callback watch(Request request, Callback callback, Runnable onGone) {
        if (!(request.getConnectionMetaData().getConnection().getEndPoint() instanceof AbstractEndPoint endPoint)) {
            return callback;
        }
        HangupWatch watch = new HangupWatch(endPoint, onGone);
        watch.arm();
        return new Callback.Nested(callback) {
            @Override
            public void succeeded() {
                watch.stop();
                super.succeeded();
            }

            @Override
            public void failed(Throwable x) {
                watch.stop();
                super.failed(x);
            }
        };
    }

    private synchronized void arm() {
        armed = !over && endPoint.tryFillInterested(this);
    }

    /** The connection is readable: the client closed it, or sent what it must not. */
    @Override
    public void succeeded() {
        int filled;
        synchronized (this) {
            armed = false;
            if (over) {
                return;
            }
            ByteBuffer probe = BufferUtil.allocate(1);
            try {
                filled = endPoint.fill(probe);
            } catch (IOException e) {
                filled = -1;
            }
            if (filled == 0) { // e.g. a TLS record that carried no data
                arm();
                return;
            }
            over = true;
        }
        if (filled > 0) {
            endPoint.close(new IOException("the client sent data after a POST before its answer"));
        }
        onGone.run();
    }

    /** The connection failed or closed. */
    @Override
    public void failed(Throwable x) {
        synchronized (this) {
            armed = false;
            if (over) {
                return;
            }
            over = true;
        }
        onGone.run();
    }

    /** Withdraws the read interest, which the connection takes up again for its next request. */
    private void stop() {
        boolean withdraw;
        synchronized (this) {
            withdraw = armed && !over;
            over = true;
        }
        if (withdraw) {
            endPoint.getFillInterest().onFail(new CancellationException("the answer is complete"));
        }
    }
}
