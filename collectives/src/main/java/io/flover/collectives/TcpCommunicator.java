package io.flover.collectives;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * One rank of a ring of persistent TCP connections: it sends to rank {@code r + 1} and receives from rank
 * {@code r - 1}. Every operation is a stream of regions of 4-byte elements: the rank sends a region of its own,
 * then forwards each region it receives once it has applied it (added into its floats, or copied over them). The calling thread
 * moves both directions with non-blocking channels, so a send never waits for the receive it depends on and
 * messages larger than the socket buffers cannot deadlock the ring. Elements travel little-endian through two
 * off-heap buffers; each region is split only where the buffers or the socket force it, so a region is forwarded
 * while its tail is still arriving (the chunks of a large message pipeline around the ring).
 *
 * <p>A large all-reduce is a ring reduce-scatter then all-gather: each rank sends {@code 2 (n - 1) / n} of the
 * vector, and each segment's final sum is computed by one rank and copied to the rest. A small one is bound by the
 * latency of a hop, so every rank's whole vector goes around the ring once instead ({@code n - 1} hops rather than
 * {@code 2 (n - 1)}) and each rank sums the vectors in rank order itself. Either way the ranks end with
 * bitwise-identical floats.
 *
 * <p>Every operation starts with a header (operation, length) that the receiver checks, so ranks that disagree on
 * the sequence of operations fail instead of exchanging garbage.
 */
final class TcpCommunicator implements Communicator {
    /**
     * All-reduces in which a rank receives at most this many floats of its peers' whole vectors take the gather
     * path. Gathering moves {@code (n - 1) L} floats per rank against the ring's {@code 2 (n - 1) L / n} (the same
     * for two ranks), and a hop on loopback costs about as much as moving tens of kilobytes: this covers a hidden
     * state or a vocabulary-sized vector on two ranks, and a quarter of that on four.
     */
    static final int GATHER_FLOATS = 32 << 10;
    private static final ValueLayout.OfFloat FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Bytes per socket call at most: big enough to amortise the call, small enough to stay in L2. */
    private static final int BUFFER_BYTES = 256 << 10;
    private static final int HEADER_BYTES = 2 * Integer.BYTES;
    private static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(10);
    private static final long YIELD_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    private static final int ALL_REDUCE_SUM = 1;
    private static final int ALL_GATHER = 2;
    private static final int BARRIER = 4;

    private final int rank;
    private final int size;
    private final long timeoutNanos;
    private final int gatherFloats;
    private final SocketChannel toNext;
    private final SocketChannel fromPrev;
    private final Selector selector;
    private final SelectionKey nextKey;
    private final SelectionKey prevKey;
    private final Consumer<Communicator> onClose;
    /** Bytes {@code [position, limit)} are still to be written. */
    private final ByteBuffer out = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    /** Bytes {@code [0, position)} are received and not yet applied; they may already belong to the next operation. */
    private final ByteBuffer in = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final MemorySegment outBytes = MemorySegment.ofBuffer(out);
    private final MemorySegment inBytes = MemorySegment.ofBuffer(in);
    private final float[] addends = new float[BUFFER_BYTES / Float.BYTES];
    /** The floats that {@code addends} are added to, copied out of the caller's segment and back. */
    private final float[] sums = new float[BUFFER_BYTES / Float.BYTES];
    private final MemorySegment barrierTokens;
    private float[] gathered = new float[0];
    private volatile boolean closed;
    /** Why the last operation failed; set and read by the rank's own thread. */
    private String failure;

    TcpCommunicator(int rank, int size, Duration timeout, int gatherFloats, SocketChannel fromPrev,
                    SocketChannel toNext, Consumer<Communicator> onClose) throws IOException {
        this.rank = rank;
        this.size = size;
        this.timeoutNanos = timeout.toNanos();
        this.gatherFloats = gatherFloats;
        this.fromPrev = fromPrev;
        this.toNext = toNext;
        this.onClose = onClose;
        this.barrierTokens = MemorySegment.ofArray(new float[size]);
        out.limit(0);
        this.selector = Selector.open();
        fromPrev.configureBlocking(false);
        toNext.configureBlocking(false);
        prevKey = fromPrev.register(selector, 0);
        nextKey = toNext.register(selector, 0);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public void allReduceSum(MemorySegment data) {
        int length = Arguments.elements(data);
        ensureUsable();
        if (length == 0) {
            return;
        }
        if ((long) (size - 1) * length <= gatherFloats) {
            gatherAndSum(data, length);
            return;
        }
        // Segment k of the vector is summed along the ring starting at rank k and ends complete on rank k - 1.
        Region[] received = new Region[2 * (size - 1)];
        for (int step = 0; step < received.length; step++) {
            received[step] = segment(data, length, rank - step - 1);
        }
        transfer(new Header(ALL_REDUCE_SUM, length), segment(data, length, rank), received, size - 1,
                received.length - 1);
    }

    private Region segment(MemorySegment data, int length, int k) {
        int segment = Math.floorMod(k, size);
        int base = length / size;
        int extra = length % size;
        return region(data, segment * base + Math.min(segment, extra), base + (segment < extra ? 1 : 0));
    }

    /** Gathers every rank's whole vector, then sums them in rank order: the same floats and order everywhere. */
    private void gatherAndSum(MemorySegment data, int length) {
        int total = size * length;
        if (gathered.length < total) {
            gathered = new float[total];
        }
        MemorySegment.copy(data, Arguments.FLOAT, 0, gathered, rank * length, length);
        gather(new Header(ALL_REDUCE_SUM, length), MemorySegment.ofArray(gathered), length);
        for (int i = 0; i < length; i++) {
            float sum = gathered[i];
            for (int r = 1; r < size; r++) {
                sum += gathered[r * length + i];
            }
            data.setAtIndex(Arguments.FLOAT, i, sum);
        }
    }

    @Override
    public void allGather(MemorySegment send, MemorySegment recv) {
        int length = Arguments.gather(send, recv, size);
        ensureUsable();
        if (length == 0) {
            return;
        }
        MemorySegment.copy(send, 0, recv, rank * send.byteSize(), send.byteSize());
        gather(new Header(ALL_GATHER, length), recv, length);
    }

    /** Passes this rank's block of {@code recv} (already in place) around the ring and receives everyone else's. */
    private void gather(Header header, MemorySegment recv, int length) {
        Region[] received = new Region[size - 1];
        for (int step = 0; step < received.length; step++) {
            received[step] = region(recv, Math.floorMod(rank - step - 1, size) * length, length);
        }
        transfer(header, region(recv, rank * length, length), received, 0, received.length - 1);
    }

    /** A one-float gather: a rank has everyone's float only once every rank has entered. */
    @Override
    public void barrier() {
        ensureUsable();
        gather(new Header(BARRIER, 1), barrierTokens, 1);
    }

    /** What every operation sends first, so that the receiver can check that both are in the same operation. */
    private record Header(int op, int length) {
        @Override
        public String toString() {
            return switch (op) {
                case ALL_REDUCE_SUM -> "allReduceSum of " + length + " floats";
                case ALL_GATHER -> "allGather of " + length + " elements per rank";
                case BARRIER -> "barrier";
                default -> "unknown operation " + op;
            };
        }
    }

    /** {@code length} elements of a segment. */
    private record Region(MemorySegment data, int length) {
    }

    private static Region region(MemorySegment data, int first, int length) {
        return new Region(data.asSlice((long) first * Float.BYTES, (long) length * Float.BYTES), length);
    }

    /** A position in a sequence of regions, counting the floats passed. */
    private static final class Cursor {
        private final Region[] regions;
        private int index;
        private int position;
        private long done;

        Cursor(Region[] regions) {
            this.regions = regions;
            skipEmpty();
        }

        boolean finished() {
            return index == regions.length;
        }

        Region region() {
            return regions[index];
        }

        /** Where in its region the next element is. */
        int at() {
            return position;
        }

        int left() {
            return regions[index].length - position;
        }

        void advance(int floats) {
            position += floats;
            done += floats;
            if (position == regions[index].length) {
                index++;
                position = 0;
                skipEmpty();
            }
        }

        private void skipEmpty() {
            while (index < regions.length && regions[index].length == 0) {
                index++;
            }
        }
    }

    /**
     * Sends {@code lead}, receives {@code received} in order, adding the first {@code added} of them into their
     * floats and copying the rest over theirs, and forwards the first {@code forwarded} as they complete.
     */
    private void transfer(Header header, Region lead, Region[] received, int added, int forwarded) {
        Region[] sent = new Region[1 + forwarded];
        sent[0] = lead;
        System.arraycopy(received, 0, sent, 1, forwarded);
        long leadFloats = lead.length();
        Cursor sending = new Cursor(sent);
        Cursor receiving = new Cursor(received);
        boolean headerToSend = true;
        boolean headerToCheck = received.length > 0;
        try {
            long idleSince = System.nanoTime();
            while (true) {
                boolean progress = false;
                if (!out.hasRemaining()) {
                    out.clear();
                    if (headerToSend) {
                        out.putInt(header.op).putInt(header.length);
                        headerToSend = false;
                    }
                    fill(sending, leadFloats + receiving.done);
                    out.flip();
                }
                if (out.hasRemaining() && toNext.write(out) > 0) {
                    progress = true;
                }
                boolean reading = headerToCheck || !receiving.finished();
                if (reading) {
                    int read = fromPrev.read(in);
                    if (read < 0) {
                        throw fail("rank " + prev() + " closed the connection during " + header, null);
                    }
                    progress |= read > 0;
                }
                in.flip();
                if (headerToCheck && in.remaining() >= HEADER_BYTES) {
                    checkHeader(header);
                    headerToCheck = false;
                }
                if (!headerToCheck) {
                    apply(receiving, added);
                }
                in.compact();
                if (sending.finished() && !out.hasRemaining() && receiving.finished() && !headerToCheck) {
                    return;
                }
                if (progress) {
                    idleSince = System.nanoTime();
                } else {
                    idle(idleSince, reading, out.hasRemaining(), header);
                }
            }
        } catch (IOException | ClosedSelectorException | CancelledKeyException e) {
            throw fail(closed ? "communicator closed during " + header
                    : "connection to rank " + prev() + " or " + next() + " failed during " + header + ": " + e, e);
        }
    }

    /** Serialises the next elements of {@code sending}, up to {@code allowed} elements of the whole stream. */
    private void fill(Cursor sending, long allowed) {
        while (!sending.finished() && sending.done < allowed && out.remaining() >= Float.BYTES) {
            int n = (int) Math.min(Math.min(sending.left(), allowed - sending.done), out.remaining() / Float.BYTES);
            MemorySegment.copy(sending.region().data, Arguments.FLOAT, (long) sending.at() * Float.BYTES, outBytes,
                    FLOAT, out.position(), n);
            out.position(out.position() + n * Float.BYTES);
            sending.advance(n);
        }
    }

    /** Applies the whole elements received so far to the regions of {@code receiving}, leaving any partial one. */
    private void apply(Cursor receiving, int added) {
        while (!receiving.finished() && in.remaining() >= Float.BYTES) {
            Region r = receiving.region();
            int at = receiving.at();
            int n = Math.min(receiving.left(), in.remaining() / Float.BYTES);
            if (receiving.index < added) {
                MemorySegment.copy(inBytes, FLOAT, in.position(), addends, 0, n);
                MemorySegment.copy(r.data, Arguments.FLOAT, (long) at * Float.BYTES, sums, 0, n);
                for (int i = 0; i < n; i++) {
                    sums[i] += addends[i];
                }
                MemorySegment.copy(sums, 0, r.data, Arguments.FLOAT, (long) at * Float.BYTES, n);
            } else {
                MemorySegment.copy(inBytes, FLOAT, in.position(), r.data, Arguments.FLOAT, (long) at * Float.BYTES, n);
            }
            in.position(in.position() + n * Float.BYTES);
            receiving.advance(n);
        }
    }

    private void checkHeader(Header ours) {
        Header theirs = new Header(in.getInt(), in.getInt());
        if (!theirs.equals(ours)) {
            throw fail("ranks disagree on the operation: rank " + prev() + " is in " + theirs + ", rank " + rank
                    + " in " + ours, null);
        }
    }

    /**
     * Waits for the sockets after a pass that moved nothing: spins first, since the peer is usually a few
     * microseconds behind, then yields, then blocks in the selector until the peer's data or the timeout.
     */
    private void idle(long idleSince, boolean reading, boolean writing, Header what) throws IOException {
        long idle = System.nanoTime() - idleSince;
        if (idle < SPIN_NANOS) {
            Thread.onSpinWait();
            return;
        }
        if (idle < YIELD_NANOS) {
            Thread.yield();
            return;
        }
        if (closed) {
            throw fail("communicator closed during " + what, null);
        }
        if (Thread.currentThread().isInterrupted()) {
            throw fail("interrupted during " + what, null);
        }
        if (idle >= timeoutNanos) {
            String peer = reading ? "data from rank " + prev() : "rank " + next() + " to take data";
            throw fail("timed out after " + Duration.ofNanos(timeoutNanos) + " in " + what + " waiting for " + peer,
                    null);
        }
        prevKey.interestOps(reading ? SelectionKey.OP_READ : 0);
        nextKey.interestOps(writing ? SelectionKey.OP_WRITE : 0);
        selector.select(Math.max(1, TimeUnit.NANOSECONDS.toMillis(timeoutNanos - idle)));
        selector.selectedKeys().clear();
    }

    private int prev() {
        return Math.floorMod(rank - 1, size);
    }

    private int next() {
        return (rank + 1) % size;
    }

    private void ensureUsable() {
        if (failure != null) {
            throw new CollectiveException("communicator is unusable after an earlier failure: " + failure);
        }
        if (closed) {
            throw new CollectiveException("communicator is closed");
        }
    }

    /** Records the first failure and closes the connections, so that the neighbours fail too instead of waiting. */
    private CollectiveException fail(String reason, Throwable cause) {
        if (failure == null) {
            failure = "rank " + rank + ": " + reason;
        }
        close();
        return new CollectiveException("rank " + rank + ": " + reason, cause);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        closeQuietly(fromPrev);
        closeQuietly(toNext);
        closeQuietly(selector);
        onClose.accept(this);
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // Closing is best effort: the connection is being abandoned either way.
        }
    }
}
