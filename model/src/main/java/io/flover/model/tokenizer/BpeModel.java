package io.flover.model.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The BPE model of a tokenizer.json: splits one pre-tokenized word into vocabulary ids by
 * applying merges in rank order, as the Hugging Face {@code tokenizers} library does.
 */
final class BpeModel {

    /** A merge of two adjacent vocabulary tokens, in rank order (its index in the merges list). */
    record Merge(String left, String right) {
    }

    private static final int CACHE_CAPACITY = 10_000;
    /** Longer words (whole sentences when there is no pre-tokenizer) are not worth caching. */
    private static final int MAX_CACHED_LENGTH = 256;

    private final Map<String, Integer> vocab;
    /** Id of each single-character token in the Basic Multilingual Plane, or -1: spares a map lookup per character. */
    private final int[] charIds = new int[Character.MAX_VALUE + 1];
    private final MergeTable merges;
    /** Ids of the {@code <0xNN>} tokens by byte (-1 where absent), or null without byte fallback. */
    private final int[] byteFallbackIds;
    private final int unkId;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param unkToken the token for characters not in the vocabulary, or null to drop them
     * @throws IllegalArgumentException if a merge or the unknown token is not in the vocabulary
     */
    BpeModel(Map<String, Integer> vocab, List<Merge> merges, String unkToken, boolean fuseUnk,
            boolean byteFallback, boolean ignoreMerges) {
        this.vocab = Map.copyOf(vocab);
        Arrays.fill(charIds, -1);
        vocab.forEach((token, id) -> {
            if (token.length() == 1) {
                charIds[token.charAt(0)] = id;
            }
        });
        this.merges = new MergeTable(merges.size());
        for (int rank = 0; rank < merges.size(); rank++) {
            Merge merge = merges.get(rank);
            this.merges.put(requireId(merge.left(), rank), requireId(merge.right(), rank), rank,
                    requireId(merge.left() + merge.right(), rank));
        }
        if (byteFallback) {
            byteFallbackIds = new int[256];
            for (int b = 0; b < 256; b++) {
                byteFallbackIds[b] = vocab.getOrDefault(String.format("<0x%02X>", b), -1);
            }
        } else {
            byteFallbackIds = null;
        }
        if (unkToken != null && !vocab.containsKey(unkToken)) {
            throw new IllegalArgumentException("unk_token \"" + unkToken + "\" is not in the vocabulary");
        }
        this.unkId = unkToken == null ? -1 : vocab.get(unkToken);
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
    }

    private int requireId(String token, int rank) {
        Integer id = vocab.get(token);
        if (id == null) {
            throw new IllegalArgumentException("merge " + rank + " uses \"" + token + "\", which is not in the vocabulary");
        }
        return id;
    }

    /** The id of a vocabulary token, or null. */
    Integer id(String token) {
        return vocab.get(token);
    }

    /** Appends the ids of {@code word} to {@code out}. */
    void tokenize(String word, IntList out) {
        if (ignoreMerges) {
            Integer id = vocab.get(word);
            if (id != null) {
                out.add(id);
                return;
            }
        }
        int[] ids = cache.get(word);
        if (ids == null) {
            ids = merge(initialSymbols(word));
            if (word.length() < MAX_CACHED_LENGTH) {
                // Starting over when full keeps the cache to recent words without LRU bookkeeping.
                if (cache.size() >= CACHE_CAPACITY) {
                    cache.clear();
                }
                cache.put(word, ids);
            }
        }
        out.addAll(ids);
    }

    /**
     * One symbol per character: its vocabulary id, else its bytes as {@code <0xNN>} tokens (byte
     * fallback), else the unknown token (consecutive ones fused into one if {@code fuse_unk}),
     * else nothing.
     */
    private IntList initialSymbols(String word) {
        IntList symbols = new IntList(word.length());
        boolean pendingUnk = false;
        for (int i = 0; i < word.length(); ) {
            int end = i + Character.charCount(word.codePointAt(i));
            int id = end == i + 1 ? charIds[word.charAt(i)] : vocab.getOrDefault(word.substring(i, end), -1);
            byte[] fallback = id < 0 ? byteFallback(word.substring(i, end)) : null;
            if (id >= 0 || fallback != null) {
                if (pendingUnk) {
                    symbols.add(unkId);
                    pendingUnk = false;
                }
                if (id >= 0) {
                    symbols.add(id);
                } else {
                    for (byte b : fallback) {
                        symbols.add(byteFallbackIds[b & 0xFF]);
                    }
                }
            } else if (unkId >= 0) {
                if (pendingUnk && !fuseUnk) {
                    symbols.add(unkId);
                }
                pendingUnk = true;
            }
            i = end;
        }
        if (pendingUnk) {
            symbols.add(unkId);
        }
        return symbols;
    }

    /** The UTF-8 bytes of {@code character} if byte fallback has a token for each, else null. */
    private byte[] byteFallback(String character) {
        if (byteFallbackIds == null) {
            return null;
        }
        byte[] bytes = character.getBytes(StandardCharsets.UTF_8);
        for (byte b : bytes) {
            if (byteFallbackIds[b & 0xFF] < 0) {
                return null;
            }
        }
        return bytes;
    }

    /**
     * Applies merges to the symbols until none applies, lowest rank first and leftmost among
     * equal ranks. Symbols form a linked list over the array; candidate pairs wait in a min-heap
     * keyed by (rank, position), and entries made stale by an earlier merge are skipped when popped.
     */
    private int[] merge(IntList symbols) {
        int n = symbols.size();
        int[] ids = symbols.toArray();
        if (n < 2) {
            return ids;
        }
        int[] prev = new int[n];
        int[] next = new int[n];
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            if (i + 1 < n) {
                pushPair(heap, ids, i, i + 1);
            }
        }
        int remaining = n;
        while (!heap.isEmpty()) {
            long top = heap.pop();
            int rank = (int) (top >>> 32);
            int left = (int) top;
            int right = next[left];
            // A merged-away symbol has id -1; a pair that changed since the push has another rank.
            if (ids[left] < 0 || right < 0 || merges.rank(ids[left], ids[right]) != rank) {
                continue;
            }
            ids[left] = merges.result(rank);
            ids[right] = -1;
            next[left] = next[right];
            if (next[left] >= 0) {
                prev[next[left]] = left;
                pushPair(heap, ids, left, next[left]);
            }
            if (prev[left] >= 0) {
                pushPair(heap, ids, prev[left], left);
            }
            remaining--;
        }
        int[] result = new int[remaining];
        for (int i = 0, at = 0; at >= 0; at = next[at]) {
            result[i++] = ids[at];
        }
        return result;
    }

    private void pushPair(LongHeap heap, int[] ids, int left, int right) {
        int rank = merges.rank(ids[left], ids[right]);
        if (rank >= 0) {
            heap.push((long) rank << 32 | left);
        }
    }

    /** Open-addressing hash table from a pair of ids to the rank of their merge. */
    private static final class MergeTable {

        private static final long EMPTY = -1L;

        private final long[] keys;
        private final int[] ranks;
        private final int[] results;
        private final int shift;

        MergeTable(int merges) {
            int capacity = Integer.highestOneBit(Math.max(merges, 2) * 2 - 1) << 1;
            keys = new long[capacity];
            Arrays.fill(keys, EMPTY);
            ranks = new int[capacity];
            results = new int[merges];
            shift = 64 - Integer.numberOfTrailingZeros(capacity);
        }

        /** Later duplicates of a pair override earlier ones, as in {@code tokenizers}. */
        void put(int left, int right, int rank, int result) {
            long key = key(left, right);
            int slot = slot(key);
            while (keys[slot] != EMPTY && keys[slot] != key) {
                slot = (slot + 1) & (keys.length - 1);
            }
            keys[slot] = key;
            ranks[slot] = rank;
            results[rank] = result;
        }

        /** The rank of merging {@code left} and {@code right}, or -1 if they do not merge. */
        int rank(int left, int right) {
            long key = key(left, right);
            for (int slot = slot(key); keys[slot] != EMPTY; slot = (slot + 1) & (keys.length - 1)) {
                if (keys[slot] == key) {
                    return ranks[slot];
                }
            }
            return -1;
        }

        /** The id the merge of a rank produces. */
        int result(int rank) {
            return results[rank];
        }

        private static long key(int left, int right) {
            return (long) left << 32 | (right & 0xFFFFFFFFL);
        }

        private int slot(long key) {
            return (int) ((key * 0x9E3779B97F4A7C15L) >>> shift);
        }
    }

    /** A binary min-heap of longs. */
    private static final class LongHeap {

        private long[] items;
        private int size;

        LongHeap(int capacity) {
            items = new long[Math.max(capacity, 4)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long item) {
            if (size == items.length) {
                items = Arrays.copyOf(items, size * 2);
            }
            int i = size++;
            while (i > 0 && items[(i - 1) >>> 1] > item) {
                items[i] = items[(i - 1) >>> 1];
                i = (i - 1) >>> 1;
            }
            items[i] = item;
        }

        long pop() {
            long top = items[0];
            long last = items[--size];
            int i = 0;
            while (true) {
                int child = 2 * i + 1;
                if (child >= size) {
                    break;
                }
                if (child + 1 < size && items[child + 1] < items[child]) {
                    child++;
                }
                if (items[child] >= last) {
                    break;
                }
                items[i] = items[child];
                i = child;
            }
            items[i] = last;
            return top;
        }
    }
}
