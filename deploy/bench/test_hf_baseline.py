"""The replay's batching, on a simulated clock: python3 -m unittest discover -s deploy/bench"""
import unittest

from hf_baseline import replay, summary


class Clock:
    def __init__(self):
        self.now = 0.0

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run(arrival_ms, output_lens, max_batch, delay_ms, step_ms=1.0):
    clock = Clock()
    batches = []

    def generate(prompts, lens):
        batches.append(list(lens))
        clock.sleep(max(lens) * step_ms / 1000)

    workload = {"arrival_ms": arrival_ms, "prompt_ids": [[1, 2]] * len(arrival_ms), "output_lens": output_lens}
    return replay(workload, max_batch, delay_ms, generate, clock.time, clock.sleep), batches


class ReplayTest(unittest.TestCase):
    def test_a_full_batch_starts_at_once_and_arrivals_wait_for_it_to_end(self):
        served, batches = run([0, 1, 2, 3], [5, 5, 5, 5], max_batch=2, delay_ms=10)
        self.assertEqual([[5, 5], [5, 5]], batches)
        ends = [round(end * 1000, 6) for _, end in served]
        self.assertEqual([6, 6, 11, 11], ends)

    def test_a_lone_request_waits_for_the_queue_delay(self):
        served, batches = run([0], [4], max_batch=8, delay_ms=10)
        self.assertEqual([[4]], batches)
        self.assertAlmostEqual(0.014, served[0][1])

    def test_a_batch_runs_as_long_as_its_longest_request(self):
        served, batches = run([0, 0, 30], [2, 9, 3], max_batch=2, delay_ms=10)
        self.assertEqual([[2, 9], [3]], batches)
        self.assertEqual([0.009, 0.009, 0.043], [round(end, 9) for _, end in served])
        total, latency = summary(served)
        self.assertAlmostEqual(0.043, total)
        self.assertAlmostEqual((0.009 + 0.009 + 0.013) / 3, latency)


if __name__ == "__main__":
    unittest.main()
