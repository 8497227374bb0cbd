package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class KvCacheManagerTest {
    @Test
    void blocksAreHandedOutLowIdsFirstAndComeBackWhenReleased() {
        KvCacheManager kv = new KvCacheManager(4, 16);
        assertArrayEquals(new int[] {0, 1, 2}, kv.allocate(3));
        assertEquals(1, kv.free());
        assertNull(kv.allocate(2), "too few free: none taken");
        assertEquals(1, kv.free());
        kv.release(new int[] {1, 0, 2}, 2);
        assertEquals(3, kv.free());
        assertEquals(0, kv.holders(0));
        assertEquals(1, kv.holders(2));
    }

    @Test
    void aSharedBlockIsFreeOnlyWhenItsLastHolderReleasesIt() {
        KvCacheManager kv = new KvCacheManager(2, 16);
        int[] prefix = kv.allocate(1);
        kv.retain(prefix, 1);
        assertEquals(2, kv.holders(prefix[0]));
        kv.release(prefix, 1);
        assertEquals(1, kv.free(), "still held by the other table");
        kv.release(prefix, 1);
        assertEquals(2, kv.free());
        assertThrows(IllegalStateException.class, () -> kv.release(prefix, 1), "a double free is a bug, not a no-op");
        assertThrows(IllegalStateException.class, () -> kv.retain(prefix, 1));
    }

    @Test
    void lengthsRoundUpToWholeBlocks() {
        KvCacheManager kv = new KvCacheManager(8, 16);
        assertEquals(0, kv.blocksFor(0));
        assertEquals(1, kv.blocksFor(1));
        assertEquals(1, kv.blocksFor(16));
        assertEquals(2, kv.blocksFor(17));
    }

    @Test
    void theAdmissionReserveLeavesOneBlockPerLiveSequence() {
        assertTrue(KvCacheManager.admits(5, 3, 2));
        assertFalse(KvCacheManager.admits(4, 3, 2));
        assertTrue(KvCacheManager.admits(3, 3, 0));
    }

    @Test
    void theVictimIsTheNewestLiveSequence() {
        assertEquals(1, KvCacheManager.victim(List.of(live(3, false), live(9, false), live(4, false))));
        assertEquals(2, KvCacheManager.victim(List.of(live(3, false), live(9, true), live(4, false))),
                "finished rows kept without reordering are skipped");
        assertEquals(0, KvCacheManager.victim(List.of(live(3, false))));
    }

    @Test
    void aPoolNeedsABlockOfAPosition() {
        assertThrows(IllegalArgumentException.class, () -> new KvCacheManager(0, 16));
        assertThrows(IllegalArgumentException.class, () -> new KvCacheManager(4, 0));
    }

    private static Planner.Live live(long id, boolean dead) {
        return new Planner.Live(id, 2, 1, 1, dead, false);
    }
}
