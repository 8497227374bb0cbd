package io.flover.openai;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CancellationException;
import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;

/**
 * Notices a client that closes its connection while its answer is computed. An HTTP/1.1 server reads nothing from a
 * connection while it handles a request on it, so otherwise a client that left is noticed only at the next write:
 * for a completion that is not streamed, its whole answer. The watch asks the connection to say when it turns
 * readable. The client has sent its whole request, and may send nothing more before the answer (no pipelining after
 * a POST, RFC 9112 9.3.2), so what comes is the end of the connection (or a client that breaks the protocol, whose
 * connection is closed): {@code onGone} runs. The watch ends before the answer's last bytes are written, so that
 * the connection reads the client's next request as usual.
 */
final class HangupWatch implements Callback {
    /** Null where the connection is not one whose read interest can be withdrawn: then nothing is watched. */
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
     * Watches {@code request}'s connection, whose body has been read, until {@link #stop}, which must come before
     * the last bytes of the answer are written: the client may send its next request as soon as it has them.
     */
    static HangupWatch start(Request request, Runnable onGone) {
        EndPoint endPoint = request.getConnectionMetaData().getConnection().getEndPoint();
        HangupWatch watch = new HangupWatch(endPoint instanceof AbstractEndPoint e ? e : null, onGone);
        watch.arm();
        return watch;
    }

    private synchronized void arm() {
        armed = !over && endPoint != null && endPoint.tryFillInterested(this);
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
    void stop() {
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
