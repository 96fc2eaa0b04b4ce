import os

EVALUATIONS = expand("results/eval/{variant}/seed{seed}", variant=VARIANTS, seed=SEEDS)
FINETUNED = expand("results/finetune/{variant}/seed{seed}", variant=VARIANTS, seed=SEEDS)
CALIBRATIONS = expand("results/calibrate/{variant}/seed{seed}", variant=VARIANTS, seed=SEEDS)
PRETRAINED = expand("results/pretrain/{method}/seed{seed}", method=METHODS, seed=SEEDS)


rule ablation:
    input:
        snapshot("ablation"),
        dataset="data/dataset",
        split="results/split",
        evaluations=EVALUATIONS,
    output:
        directory("results/ablation"),
    log:
        "results/logs/ablation.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage ablation --dataset {input.dataset} --split {input.split} --evaluations {input.evaluations}"
        " --out {output} --log {log}"


rule figures:
    input:
        snapshot("figures"),
        dataset="data/dataset",
        split="results/split",
        ablation="results/ablation",
        evaluations=EVALUATIONS,
        finetuned=FINETUNED,
        pretrained=PRETRAINED,
    output:
        directory("results/figures"),
    log:
        "results/logs/figures.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage figures --dataset {input.dataset} --split {input.split} --ablation {input.ablation}"
        " --evaluations {input.evaluations}"
        " --finetuned {input.finetuned} --pretrained {input.pretrained} --out {output} --log {log}"


# The study ends with a usable model: the paper variant with the best validation MRE, exported.
rule export:
    input:
        snapshot("export"),
        finetuned=FINETUNED,
        calibrations=CALIBRATIONS,
    output:
        directory("reports/model"),
    log:
        "results/logs/export.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage export --finetuned {input.finetuned} --calibrations {input.calibrations} --out {output} --log {log}"


# The last job: it checks every result against its sources and the current parameters, then
# writes the report a reviewer reads (reports/report.html, self-contained).
rule report:
    input:
        snapshot("report"),
        dataset="data/dataset",
        split="results/split",
        filter="results/filter",
        ablation="results/ablation",
        figures="results/figures",
        model="reports/model",
        results=["results/validate", *PRETRAINED, *FINETUNED, *CALIBRATIONS, *EVALUATIONS],
    output:
        "reports/claims.md",
        "reports/claims.csv",
        "reports/claims.tex",
        "reports/ablation.md",
        "reports/ablation.csv",
        "reports/ablation.tex",
        "reports/reference.md",
        "reports/reference.csv",
        "reports/published.md",
        "reports/per_landmark.csv",
        "reports/by_aop_range.csv",
        "reports/confidence.csv",
        "reports/coverage.csv",
        "reports/coverage.md",
        "reports/flagging.csv",
        "reports/metrics.json",
        directory("reports/figures"),
        "reports/provenance.json",
        "reports/report.html",
        "reports/stamp.json",
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "results/logs/report.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage report --dataset {input.dataset} --split {input.split} --filter {input.filter}"
        " --ablation {input.ablation} --figures {input.figures} --model {input.model} --results {input.results}"
        " --out {params.out} --log {log}"
