package io.flover.collectives;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardSocketOptions;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A worker process's endpoint for TCP groups: it listens once, when the process starts, on the address announced
 * to the cluster, and forms any number of groups over time with {@link #join}. In a group of {@code n}, rank
 * {@code r} connects to rank {@code (r + 1) % n} and accepts a connection from rank {@code (r - 1) % n}; each
 * connection opens with a handshake naming the group, the sender's rank and the group size, and the listener
 * refuses any that no pending join expects (a stale group, another cluster, a wrong rank).
 *
 * <p>Closing the transport closes every communicator it formed.
 */
public final class TcpTransport implements AutoCloseable {
    static final int MAGIC = 0x464C5652; // "FLVR"
    /** How long an accepted connection may take to send its handshake. */
    private static final int HANDSHAKE_MILLIS = 5_000;
    private static final long RETRY_MILLIS = 20;

    private final ServerSocketChannel server;
    private final InetSocketAddress address;
    private final Map<Key, Pending> pending = new HashMap<>();
    private final Set<Communicator> formed = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private record Key(String groupId, int rank) {
    }

    /** A join waiting for the connection from its previous rank. */
    private static final class Pending {
        final int size;
        final CompletableFuture<SocketChannel> previous = new CompletableFuture<>();
        boolean claimed;

        Pending(int size) {
            this.size = size;
        }
    }

    private TcpTransport(ServerSocketChannel server) throws IOException {
        this.server = server;
        this.address = (InetSocketAddress) server.getLocalAddress();
        Thread.ofPlatform().daemon().name("flover-collectives-accept-" + address.getPort()).start(this::acceptLoop);
    }

    /** Listens on {@code bind}; port 0 picks a free port, which {@link #address()} then tells. */
    public static TcpTransport listen(InetSocketAddress bind) throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open();
        try {
            server.bind(bind, 64);
            return new TcpTransport(server);
        } catch (IOException | RuntimeException e) {
            server.close();
            throw e;
        }
    }

    /** The bound address (a wildcard host if bound to one: peers must be told a reachable host). */
    public InetSocketAddress address() {
        return address;
    }

    /**
     * Joins group {@code groupId} as {@code rank} of {@code peers.size()}, where {@code peers.get(i)} is rank
     * {@code i}'s listening address. Connecting to the next rank is retried until {@code timeout}, since the peers
     * start their joins at slightly different times; {@code timeout} also bounds every wait of the communicator's
     * operations. Group ids must be unique over time (e.g. carry an epoch), or a stale peer may be taken for a
     * member.
     *
     * @throws CollectiveException if the ring does not close within {@code timeout}
     */
    public Communicator join(String groupId, int rank, List<InetSocketAddress> peers, Duration timeout) {
        return join(groupId, rank, peers, timeout, TcpCommunicator.GATHER_FLOATS);
    }

    /** {@link #join} with another limit for the gather path of small all-reduces (0 makes every all-reduce a ring). */
    Communicator join(String groupId, int rank, List<InetSocketAddress> peers, Duration timeout, int gatherFloats) {
        int size = peers.size();
        if (rank < 0 || rank >= size) {
            throw new IllegalArgumentException("rank " + rank + " is not in a group of " + size);
        }
        if (size == 1) {
            return Communicator.solo();
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        Key key = new Key(groupId, rank);
        Pending p = new Pending(size);
        synchronized (pending) {
            ensureOpen();
            if (pending.putIfAbsent(key, p) != null) {
                throw new IllegalStateException("rank " + rank + " of group '" + groupId + "' is already joining here");
            }
        }
        SocketChannel next = null;
        SocketChannel previous = null;
        try {
            next = connect(peers.get((rank + 1) % size), groupId, rank, size, deadline);
            previous = awaitPrevious(p, groupId, rank, size, deadline);
            TcpCommunicator c = new TcpCommunicator(rank, size, timeout, gatherFloats, previous, next, formed::remove);
            formed.add(c);
            if (closed) {
                c.close();
                ensureOpen();
            }
            return c;
        } catch (IOException | RuntimeException e) {
            closeQuietly(next);
            closeQuietly(previous);
            throw e instanceof CollectiveException ce ? ce
                    : new CollectiveException("rank " + rank + " could not join group '" + groupId + "': " + e, e);
        } finally {
            synchronized (pending) {
                pending.remove(key);
            }
            // A connection handed over after the wait gave up is nobody's.
            if (p.previous.state() == Future.State.SUCCESS && p.previous.resultNow() != previous) {
                closeQuietly(p.previous.resultNow());
            }
        }
    }

    private SocketChannel connect(InetSocketAddress to, String groupId, int rank, int size, long deadline) {
        int next = (rank + 1) % size;
        String lastProblem;
        while (true) {
            ensureOpen();
            long millisLeft = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            SocketChannel ch = null;
            try {
                ch = SocketChannel.open();
                Socket s = ch.socket();
                s.connect(to, (int) Math.max(1, millisLeft));
                s.setSoTimeout((int) Math.max(1, millisLeft));
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(MAGIC);
                out.writeUTF(groupId);
                out.writeInt(size);
                out.writeInt(rank);
                out.flush();
                String refusal = new DataInputStream(s.getInputStream()).readUTF();
                if (refusal.isEmpty()) {
                    ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    return ch;
                }
                lastProblem = "refused: " + refusal;
            } catch (IOException e) {
                lastProblem = e.toString();
            }
            closeQuietly(ch);
            if (System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(RETRY_MILLIS) > deadline) {
                throw new CollectiveException("rank " + rank + " of group '" + groupId + "' could not connect to rank "
                        + next + " at " + to + " in time: " + lastProblem);
            }
            sleep(RETRY_MILLIS);
        }
    }

    private SocketChannel awaitPrevious(Pending p, String groupId, int rank, int size, long deadline)
            throws IOException {
        try {
            SocketChannel ch = p.previous.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            return ch;
        } catch (TimeoutException e) {
            throw new CollectiveException("rank " + rank + " of group '" + groupId + "': rank "
                    + Math.floorMod(rank - 1, size) + " did not connect in time");
        } catch (ExecutionException e) {
            throw (CollectiveException) e.getCause();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("interrupted while joining group '" + groupId + "'", e);
        }
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                SocketChannel ch = server.accept();
                // A silent or slow client must not hold up the handshakes of real peers.
                Thread.ofVirtual().name("flover-collectives-handshake").start(() -> handshake(ch));
            } catch (IOException e) {
                if (!closed) {
                    sleep(RETRY_MILLIS); // e.g. out of file descriptors: try again
                }
            }
        }
    }

    private void handshake(SocketChannel ch) {
        Pending claimed = null;
        try {
            Socket s = ch.socket();
            s.setSoTimeout(HANDSHAKE_MILLIS);
            DataInputStream in = new DataInputStream(s.getInputStream());
            if (in.readInt() != MAGIC) {
                closeQuietly(ch);
                return;
            }
            String groupId = in.readUTF();
            int size = in.readInt();
            int from = in.readInt();
            String refusal;
            synchronized (pending) {
                boolean valid = size > 1 && from >= 0 && from < size;
                Pending p = valid ? pending.get(new Key(groupId, (from + 1) % size)) : null;
                if (p == null) {
                    refusal = "no rank of group '" + groupId + "' waits here for rank " + from + " of " + size;
                } else if (p.size != size) {
                    refusal = "group '" + groupId + "' has " + p.size + " ranks here, not " + size;
                } else if (p.claimed) {
                    refusal = "rank " + (from + 1) % size + " of group '" + groupId + "' is already connected";
                } else {
                    refusal = "";
                    p.claimed = true;
                    claimed = p;
                }
            }
            new DataOutputStream(s.getOutputStream()).writeUTF(refusal);
            if (claimed == null) {
                closeQuietly(ch);
                return;
            }
            synchronized (pending) {
                if (pending.containsValue(claimed) && claimed.previous.complete(ch)) {
                    return;
                }
            }
            closeQuietly(ch);
        } catch (IOException e) {
            closeQuietly(ch);
            if (claimed != null) {
                synchronized (pending) {
                    claimed.claimed = false;
                }
            }
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new CollectiveException("transport is closed");
        }
    }

    /** Stops listening, fails the joins under way and closes every communicator formed here. Idempotent. */
    @Override
    public void close() {
        synchronized (pending) {
            if (closed) {
                return;
            }
            closed = true;
            for (Pending p : pending.values()) {
                p.previous.completeExceptionally(new CollectiveException("transport is closed"));
            }
        }
        closeQuietly(server);
        for (Communicator c : formed) {
            c.close();
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("interrupted", e);
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception ignored) {
            // Best effort: the connection is abandoned either way.
        }
    }
}
