package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Packed weights on 2 MiB pages, where the kernel gives them. */
class HugePagesTest {
    @Test
    void memoryThatSpansHugePagesIsAlignedToThemAndCollapsedWhereLinuxAllows() throws IOException {
        MemorySegment big = HugePages.allocate(3 * HugePages.SIZE + 100);
        assertEquals(0, big.address() % HugePages.SIZE);
        big.fill((byte) 7);
        assertFalse(HugePages.collapse(HugePages.allocate(HugePages.SIZE - 1)), "spans no huge page");

        Path mode = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        assumeTrue(Files.isReadable(mode) && !Files.readString(mode).contains("[never]"),
                "transparent huge pages are not on here");
        assumeTrue(kernelAtLeast(6, 1), "MADV_COLLAPSE came with Linux 6.1");
        assertTrue(HugePages.collapse(big));
        assertEquals(7, big.get(ValueLayout.JAVA_BYTE, 3 * HugePages.SIZE + 99), "the contents move with the pages");
    }

    private static boolean kernelAtLeast(int major, int minor) {
        String[] v = System.getProperty("os.version", "0.0").split("[.-]");
        int ma = Integer.parseInt(v[0]);
        int mi = v.length > 1 ? Integer.parseInt(v[1]) : 0;
        return ma > major || ma == major && mi >= minor;
    }
}
