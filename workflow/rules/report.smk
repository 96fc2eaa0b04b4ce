import os

EVALUATIONS = expand("results/eval/{variant}/seed{seed}", variant=VARIANTS, seed=SEEDS)
FINETUNED = expand("results/finetune/{variant}/seed{seed}", variant=VARIANTS, seed=SEEDS)
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
    conda:
        ENV
    shell:
        "iugc stage figures --dataset {input.dataset} --split {input.split} --ablation {input.ablation}"
        " --evaluations {input.evaluations}"
        " --finetuned {input.finetuned} --pretrained {input.pretrained} --out {output} --log {log}"


# The last job: it checks every result against its sources and the current parameters, then
# writes the report a reviewer reads.
rule report:
    input:
        snapshot("report"),
        dataset="data/dataset",
        ablation="results/ablation",
        figures="results/figures",
        results=[
            "results/validate",
            "results/split",
            "results/filter",
            *PRETRAINED,
            *FINETUNED,
            *EVALUATIONS,
        ],
    output:
        report("reports/claims.md", caption="../report/claims.rst", category="Claims of the paper"),
        "reports/claims.csv",
        "reports/claims.tex",
        report("reports/ablation.md", caption="../report/ablation.rst", category="Ablation (Table 2)"),
        "reports/ablation.csv",
        "reports/ablation.tex",
        "reports/published.md",
        "reports/per_landmark.csv",
        "reports/by_aop_range.csv",
        "reports/metrics.json",
        report(
            directory("reports/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        report("reports/provenance.json", caption="../report/provenance.rst", category="Provenance"),
        "reports/stamp.json",
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "results/logs/report.log",
    conda:
        ENV
    shell:
        "iugc stage report --dataset {input.dataset} --ablation {input.ablation} --figures {input.figures}"
        " --results {input.results} --out {params.out} --log {log}"
