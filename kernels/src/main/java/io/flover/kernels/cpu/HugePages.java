package io.flover.kernels.cpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Memory for packed weights on 2 MiB pages where Linux gives them. Decoding streams every weight once per step: on
 * 4 KiB pages that is a TLB miss, and a page walk, every 4 KiB, which 2 MiB pages all but remove. Linux backs
 * anonymous memory with huge pages by default only in the {@code always} mode of transparent huge pages; most
 * distributions ship {@code madvise}, so the memory is asked for them ({@code MADV_HUGEPAGE}) and, once written,
 * collapsed into them at once ({@code MADV_COLLAPSE}, Linux 6.1+) rather than whenever khugepaged gets to it.
 * Anywhere that fails (another OS, an older kernel, THP off) the memory simply stays on small pages.
 */
final class HugePages {
    static final long SIZE = 2L << 20;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_COLLAPSE = 25;
    private static final Optional<MethodHandle> MADVISE = madvise();

    private HugePages() {
    }

    /** {@code bytes} of zeroed memory, freed when unreachable; aligned to huge pages where it spans one. */
    static MemorySegment allocate(long bytes) {
        return Arena.ofAuto().allocate(Math.max(1, bytes), bytes >= SIZE ? SIZE : 64);
    }

    /**
     * Moves the whole huge pages of {@code written}, memory from {@link #allocate}, onto huge pages; whether they
     * are on them now (false also where it spans none).
     */
    static boolean collapse(MemorySegment written) {
        long whole = written.byteSize() / SIZE * SIZE;
        if (whole == 0 || MADVISE.isEmpty() || written.address() % SIZE != 0) {
            return false;
        }
        try {
            MethodHandle madvise = MADVISE.get();
            return (int) madvise.invokeExact(written, whole, MADV_HUGEPAGE) == 0
                    && (int) madvise.invokeExact(written, whole, MADV_COLLAPSE) == 0;
        } catch (Throwable e) {
            return false; // the weights work as well on small pages
        }
    }

    private static Optional<MethodHandle> madvise() {
        if (!System.getProperty("os.name", "").startsWith("Linux")) {
            return Optional.empty();
        }
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("madvise").map(f -> linker.downcallHandle(f,
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT)));
        } catch (RuntimeException | LinkageError e) {
            return Optional.empty();
        }
    }
}
