#!/usr/bin/env python3
"""Replays the workloads of `flover bench flover --json` on Hugging Face transformers' `generate` with static
batching, and sets Flover's fusion beside it.

Static batching is the request-level batching of the Flover paper's baseline, as `bench flover`'s
dynamic-batching policy does it: a batch starts when `max_batch` requests wait or the oldest has waited
`max_queue_delay_ms`; it generates as many tokens as its longest request asks for, every prompt left-padded to the
longest; nobody joins until it ends, and all of its requests end together. Arrival times, prompts (token ids),
output lengths and the batch settings come from the JSON, so both sides serve the same requests. Latency runs
from a request's arrival to its batch's end, total time from the first arrival to the last end: the figures
`bench flover` reports for its own runs.

    flover bench flover --device cuda:0 --model DIR --json flover.json
    deploy/bench/hf_baseline.py flover.json --model DIR --json hf.json

Needs torch and transformers, and the model directory in Hugging Face format. With --simulate-step-ms it loads
no model and each batch takes that long per output token: a check of the replay, or an estimate of static
batching at a given step time.
"""
import argparse
import json
import statistics
import sys
import time


def replay(workload, max_batch, max_queue_delay_ms, generate, clock=time.monotonic, sleep=time.sleep):
    """Serves `workload` with static batching in real time; returns each request's (arrival, end) in seconds
    from the first arrival. `generate(prompts, output_lens)` runs one batch to its end."""
    arrivals = [ms / 1000 for ms in workload["arrival_ms"]]
    prompts = workload["prompt_ids"]
    lengths = workload["output_lens"]
    n = len(arrivals)
    delay = max_queue_delay_ms / 1000
    ends = [None] * n
    waiting = []
    arrived = 0
    start = clock()
    while arrived < n or waiting:
        now = clock() - start
        while arrived < n and arrivals[arrived] <= now:
            waiting.append(arrived)
            arrived += 1
        if waiting and (len(waiting) >= max_batch or now - arrivals[waiting[0]] >= delay):
            batch, waiting = waiting[:max_batch], waiting[max_batch:]
            generate([prompts[i] for i in batch], [lengths[i] for i in batch])
            end = clock() - start
            for i in batch:
                ends[i] = end
            continue
        wake = [arrivals[arrived]] if arrived < n else []
        wake += [arrivals[waiting[0]] + delay] if waiting else []
        sleep(max(0.0, min(wake) - now))
    return list(zip(arrivals, ends))


def summary(served):
    """Total seconds and mean latency in seconds, as `bench flover` defines them."""
    total = max(end for _, end in served) - min(arrival for arrival, _ in served)
    return total, statistics.fmean(end - arrival for arrival, end in served)


def experiments(bench):
    """(label, workload, Flover fusion's run) of every run in the bench JSON that fusion took part in."""
    if "constant" in bench:
        c = bench["constant"]
        yield (f"constant interval {c['interval_ms']:.1f} ms, {c['output_len']} tokens", c["workload"],
               c["runs"][0])
    for g in bench.get("poisson", {}).get("gaps", []):
        yield f"Poisson, mean gap {g['gap_ms']:.1f} ms", g["workload"], g["runs"][0]
    for r in bench.get("reorder", {}).get("lengths", []):
        yield f"output lengths uniform in [16, {r['max_len']}]", r["workload"], r["runs"][0]


def simulated(step_ms):
    def generate(prompts, output_lens):
        time.sleep(max(output_lens) * step_ms / 1000)
    return generate


def transformers_generate(model_dir, device, dtype, threads):
    import torch
    from transformers import AutoModelForCausalLM

    if device == "cpu":
        torch.set_num_threads(threads)  # as many as Flover computed with

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype="auto" if dtype == "auto" else getattr(torch, dtype)).to(device).eval()
    pad = model.config.pad_token_id
    if pad is None:
        pad = model.config.eos_token_id if isinstance(model.config.eos_token_id, int) else 0

    def generate(prompts, output_lens):
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        new = max(output_lens)
        with torch.inference_mode():
            # min_new_tokens keeps an end-of-sequence token from stopping a row early, as ignore_eos does in Flover.
            model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=new,
                           min_new_tokens=new, do_sample=False, pad_token_id=pad)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return generate, (f"{model.config.model_type} in {next(model.parameters()).dtype} on {device}"
                      + (f", {torch.get_num_threads()} threads" if device == "cpu" else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench_json", help="the --json file of flover bench flover")
    parser.add_argument("--model", help="model directory (default: the one in the bench JSON)")
    parser.add_argument("--device", default="cuda", help="torch device (default: %(default)s)")
    parser.add_argument("--dtype", default="auto", help="torch dtype of the weights, e.g. bfloat16 "
                        "(default: the checkpoint's)")
    parser.add_argument("--simulate-step-ms", type=float, metavar="MS",
                        help="load no model: each batch takes MS per output token")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    with open(args.bench_json) as f:
        bench = json.load(f)
    settings = bench["settings"]
    max_batch, delay_ms = settings["max_batch"], settings["max_queue_delay_ms"]
    if args.simulate_step_ms is not None:
        generate, what = simulated(args.simulate_step_ms), f"simulated, {args.simulate_step_ms} ms per step"
    else:
        generate, what = transformers_generate(args.model or bench["model"]["dir"], args.device, args.dtype,
                                               bench["machine"]["threads"])
        # The first batches compile and tune kernels: run a full one untimed.
        first = next(experiments(bench))[1]
        generate(first["prompt_ids"][:max_batch], [8] * min(max_batch, len(first["prompt_ids"])))

    print(f"Hugging Face generate, static batching ({what}); batches of up to {max_batch}, queue delay "
          f"{delay_ms} ms; Flover: {bench['machine'].get('device', 'cpu')}")
    print()
    print("| workload | total (s), Flover fusion | total (s), static batching | fusion's speedup, total | "
          "mean latency (s), Flover fusion | mean latency (s), static batching | fusion's speedup, latency |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for label, workload, fusion in experiments(bench):
        total, latency = summary(replay(workload, max_batch, delay_ms, generate))
        fusion_total, fusion_latency = fusion["duration_s"], fusion["e2e_ms"]["mean"] / 1000
        rows.append({"workload": label, "requests": len(workload["arrival_ms"]),
                     "static_total_s": total, "static_mean_latency_s": latency,
                     "fusion_total_s": fusion_total, "fusion_mean_latency_s": fusion_latency,
                     "speedup_total": total / fusion_total, "speedup_latency": latency / fusion_latency})
        print(f"| {label} | {fusion_total:.1f} | {total:.1f} | {total / fusion_total:.2f}x | "
              f"{fusion_latency:.2f} | {latency:.2f} | {latency / fusion_latency:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"baseline": what, "max_batch": max_batch, "max_queue_delay_ms": delay_ms, "rows": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
