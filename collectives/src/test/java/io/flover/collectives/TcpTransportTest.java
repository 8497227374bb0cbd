package io.flover.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Ranks are threads of this JVM, each with its own listener on an ephemeral loopback port: real sockets. */
class TcpTransportTest extends CommunicatorContract {
    private int groups;

    @Override
    List<Communicator> form(int size, Duration timeout) throws Exception {
        return join(listeners(size), timeout, TcpCommunicator.GATHER_FLOATS);
    }

    List<TcpTransport> listeners(int size) throws IOException {
        List<TcpTransport> transports = new ArrayList<>();
        for (int r = 0; r < size; r++) {
            TcpTransport t = TcpTransport.listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            toClose.add(t);
            transports.add(t);
        }
        return transports;
    }

    /** Joins a fresh group on {@code transports}, every rank from its own thread as separate processes would. */
    List<Communicator> join(List<TcpTransport> transports, Duration timeout, int gatherFloats) throws Exception {
        List<InetSocketAddress> peers = transports.stream().map(TcpTransport::address).toList();
        String groupId = "group-" + groups++;
        List<Future<Communicator>> joins = new ArrayList<>();
        for (int r = 0; r < transports.size(); r++) {
            int rank = r;
            joins.add(threads.submit(() -> transports.get(rank).join(groupId, rank, peers, timeout, gatherFloats)));
        }
        List<Communicator> group = new ArrayList<>();
        for (Future<Communicator> j : joins) {
            group.add(j.get());
        }
        toClose.addAll(group);
        return group;
    }

    @ParameterizedTest(name = "{0} ranks")
    @ValueSource(ints = {2, 3, 4})
    void theRingPathHandlesEveryLengthIncludingFewerFloatsThanRanks(int size) throws Exception {
        List<Communicator> group = join(listeners(size), TIMEOUT, 0);
        for (int length : new int[] {1, 2, 3, 5, 7, 768, 1001}) {
            checkAllReduce(group, length);
        }
    }

    @Test
    void peersThatJoinAtDifferentTimesStillFormTheRing() throws Exception {
        List<TcpTransport> transports = listeners(3);
        List<InetSocketAddress> peers = transports.stream().map(TcpTransport::address).toList();
        List<Future<Communicator>> joins = new ArrayList<>();
        for (int r = 0; r < 3; r++) {
            int rank = r;
            joins.add(threads.submit(() -> {
                Thread.sleep(150L * rank);
                return transports.get(rank).join("late", rank, peers, TIMEOUT);
            }));
        }
        List<Communicator> group = new ArrayList<>();
        for (Future<Communicator> j : joins) {
            group.add(j.get());
        }
        toClose.addAll(group);
        checkAllReduce(group, 1001);
    }

    @Test
    void foreignAndMismatchedConnectionsAreRefusedAndTheRealPeerStillJoins() throws Exception {
        List<TcpTransport> transports = listeners(2);
        List<InetSocketAddress> peers = transports.stream().map(TcpTransport::address).toList();
        Future<Communicator> rank0 = threads.submit(() -> transports.get(0).join("g", 0, peers, TIMEOUT));
        InetSocketAddress at = peers.get(0);
        String refusal;
        long end = System.nanoTime() + 5_000_000_000L;
        do { // until rank 0's join is waiting for its previous rank
            refusal = handshake(at, "g", 3, 2);
        } while (refusal.startsWith("no rank") && System.nanoTime() < end);
        assertEquals("group 'g' has 2 ranks here, not 3", refusal);
        assertTrue(handshake(at, "another-group", 2, 1).startsWith("no rank of group 'another-group'"));
        try (Socket s = new Socket(at.getAddress(), at.getPort())) {
            s.getOutputStream().write("GET / HTTP/1.1\r\n\r\n".getBytes());
            int read;
            try {
                read = s.getInputStream().read();
            } catch (SocketException reset) {
                read = -1;
            }
            assertEquals(-1, read, "a stranger is hung up on");
        }
        Communicator rank1 = transports.get(1).join("g", 1, peers, TIMEOUT);
        List<Communicator> group = List.of(rank0.get(), rank1);
        toClose.addAll(group);
        checkAllReduce(group, 1001);
    }

    /** Sends a handshake as {@code rank} of {@code size} in {@code groupId}; returns the refusal, empty if accepted. */
    private static String handshake(InetSocketAddress to, String groupId, int size, int rank) throws IOException {
        try (Socket s = new Socket(to.getAddress(), to.getPort())) {
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(TcpTransport.MAGIC);
            out.writeUTF(groupId);
            out.writeInt(size);
            out.writeInt(rank);
            return new DataInputStream(s.getInputStream()).readUTF();
        } catch (EOFException e) {
            return "hung up";
        }
    }

    @Test
    void joinFailsWithinTheTimeoutWhenAPeerNeverJoins() throws Exception {
        List<TcpTransport> transports = listeners(2);
        List<InetSocketAddress> peers = transports.stream().map(TcpTransport::address).toList();
        CollectiveException e = assertTimeoutPreemptively(SHORT_TIMEOUT.multipliedBy(2), () -> assertThrows(
                CollectiveException.class, () -> transports.get(0).join("alone", 0, peers, SHORT_TIMEOUT)));
        assertTrue(e.getMessage().contains("could not connect to rank 1"), e.getMessage());
    }

    @Test
    void closingAPeersTransportFailsTheOthersAtOnce() throws Exception {
        List<TcpTransport> transports = listeners(3);
        List<Communicator> group = join(transports, TIMEOUT, TcpCommunicator.GATHER_FLOATS);
        List<Throwable> thrown = assertTimeoutPreemptively(Duration.ofSeconds(3), () -> outcomes(group, c -> {
            if (c.rank() == 2) {
                Thread.sleep(200);
                transports.get(2).close();
            } else {
                c.allReduceSum(all(new float[768]));
            }
            return null;
        }));
        assertInstanceOf(CollectiveException.class, thrown.get(0));
        assertInstanceOf(CollectiveException.class, thrown.get(1));
        assertThrows(CollectiveException.class, group.get(2)::barrier);
    }
}
