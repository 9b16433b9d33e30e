"""The device report as Markdown: an environment line and one table per section."""

from __future__ import annotations


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _status(row: dict) -> str | None:
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "oom" in row:
        return "out of memory"
    return None


def markdown(report: dict) -> str:
    """The report as Markdown: an environment line and one table per section."""
    env = report["environment"]
    where = env.get("gpu", f"CPU ({env['cpu']}, {env['cpu_count']} cores)")
    lines = [f"### Device report: {where}", ""]
    lines.append(
        f"`python scripts/device_report.py{' --quick' if report['settings']['quick'] else ''}`"
        f", {env['date_utc']} UTC, torch {env['torch']}"
        + (f", CUDA {env['cuda']}, {env['gpu_memory_gib']} GiB" if "gpu" in env else "")
        + f"; took {report['total_s']} s."
    )
    if report["settings"]["quick"]:
        lines.append("")
        lines.append("*Quick mode: tiny model and images; the numbers only show that every "
                     "path runs.*")
    if not report.get("complete"):
        lines += ["", "*Partial report: the run was still going (or was cut short) when this "
                      "was written; the sections below are what it had measured.*"]
    if "precision" in report:
        p = report["precision"]
        lines += ["", "#### Precision (channel orders of every DGPB against fp32, TF32 off)", "",
                  "| autocast | TF32 | positions that differ, per DGPB (level 1 .. latent) |",
                  "|---|---|---|"]
        for r in p["orders"]:
            diffs = ", ".join(f"{d} of {n}" for d, n in
                              zip(r["differing_positions"], r["positions"], strict=True))
            lines.append(f"| {r['amp']} | {r['tf32']} | {diffs} |")
        if "fp16_image" in p:
            f = p["fp16_image"]
            lines += ["", f"fp16 autocast on a {f['image']} image: finite {f['finite']}, "
                          f"PSNR against fp32 {f['psnr_vs_fp32']:.1f} dB."]
    if "throughput" in report:
        s = report["settings"]["size"]
        lines += ["", f"#### Model throughput ({s}x{s}, forward+backward = one training step "
                      "without the optimizer)", "",
                  "| model | batch | mode | fwd img/s | fwd+bwd img/s | train TFLOP/s | "
                  "peak MiB | compile s |", "|---|---|---|---|---|---|---|---|"]
        for r in report["throughput"]:
            status = _status(r)
            if status:
                lines.append(f"| {r['model']} | {r['batch']} | {r['mode']} | {status} "
                             "| | | | |")
                continue
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['mode']} | {_f(r['forward_img_s'], 1)} | "
                f"{_f(r['train_img_s'], 1)} | {_f(r['train_tflops'], 1)} | "
                f"{_f(r['peak_mib'], 0)} | {_f(r['compile_s'], 1)} |")
    if report.get("training"):
        t = report["training"]
        lines += ["", "#### End-to-end training (five-task recipe, full Trainer, generated data)",
                  "", "Images per family: " + str(t["images_per_family"]) + "; sizes: "
                  + ", ".join(f"{k} {v}" for k, v in t["image_sizes"].items())
                  + f". Largest batch that fits (bf16 + channels_last, as the run that uses "
                    f"it): {t.get('largest_batch', '-')}.", "",
                  "| batch | decode cache | bf16 | channels_last | compile | it/s | samples/s | "
                  "waiting for data | peak MiB | iterations | first step s | kernels per step |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in t.get("runs", []):
            default = " (recipe default)" if r.get("recipe_default") else ""
            head = (f"| {r['batch']}{default} | {r['cache']} | {r['bf16']} | "
                    f"{r['channels_last']} | {r.get('compile', 'none')} |")
            status = _status(r)
            if status:
                lines.append(f"{head} {status} | | | | | | |")
                continue
            wait = r.get("data_wait_fraction")
            lines.append(f"{head} {_f(r['it_s'])} | {_f(r['samples_s'], 1)} | "
                         f"{'-' if wait is None else f'{100 * wait:.1f}%'} | "
                         f"{_f(r['peak_mib'], 0)} | {r['iterations']} | "
                         f"{_f(r.get('first_step_s'), 1)} | {r.get('kernels_per_step') or '-'} |")
        if t.get("stage_memory"):
            lines += ["", "Peak memory of one training step per stage (its crop and batch):", "",
                      "| stage | crop | batch | precision | peak MiB |", "|---|---|---|---|---|"]
            for r in t["stage_memory"]:
                status = _status(r)
                lines.append(f"| {r['stage']} | {r['patch']} | {r['batch']} | {r['precision']} "
                             f"| {status or _f(r.get('peak_mib'), 0)} |")
        compiled = t.get("compile")
        if compiled:
            if "skipped" in compiled:
                lines += ["", f"torch.compile across the stages' crops: skipped "
                              f"({compiled['skipped']})."]
            else:
                steps = "; ".join(f"{r['stage']} {r['patch']}x{r['patch']}: first step "
                                  f"{r['first_step_s']} s, {r['graphs_so_far']} graph(s) so far"
                                  for r in compiled["stages"])
                lines += ["", f"torch.compile across the stages' crops (bf16 + channels_last): "
                              f"{steps}."]
        if t.get("projections"):
            lines += ["", "Projected wall time of the paper's recipes at batch 5 (released "
                          "training sets; the 192x192 fine-tune scaled by pixels):", "",
                      "| mode | recipe | samples/epoch | stages | hours |",
                      "|---|---|---|---|---|"]
            for precision, projections in t["projections"].items():
                for p in projections:
                    stages = "; ".join(f"{s['stage']} {s['epochs']} ep x {s['iterations']:,} it"
                                       for s in p["stages"])
                    lines.append(f"| {precision} | {p['recipe']} | {p['samples_per_epoch']:,} "
                                 f"| {stages} | {p['hours']:.1f} |")
    if "inference" in report:
        lines += ["", "#### Inference (one image, `dfpir.inference.restore`)", "",
                  "| image | tile | precision | seconds | peak MiB | PSNR bf16 vs fp32 |",
                  "|---|---|---|---|---|---|"]
        for r in report["inference"]:
            head = f"| {r['image']} | {r['tile']} | {r['precision']} |"
            status = _status(r)
            if status:
                lines.append(f"{head} {status} | | |")
                continue
            psnr = r.get("psnr_bf16_vs_fp32")
            lines.append(f"{head} {_f(r['seconds'], 3)} | {_f(r['peak_mib'], 0)} | "
                         f"{'-' if psnr is None else f'{psnr:.1f} dB'} |")
    return "\n".join(lines) + "\n"

