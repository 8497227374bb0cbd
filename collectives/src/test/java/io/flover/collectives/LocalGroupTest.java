package io.flover.collectives;

import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class LocalGroupTest extends CommunicatorContract {
    @Override
    List<Communicator> form(int size, Duration timeout) {
        List<Communicator> group = LocalGroup.create(size, timeout);
        toClose.addAll(group);
        return group;
    }

    @Test
    void aGroupNeedsARank() {
        assertThrows(IllegalArgumentException.class, () -> LocalGroup.create(0, TIMEOUT));
    }
}
