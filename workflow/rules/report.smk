rule ablation:
    input:
        snapshot("ablation"),
        evaluations=expand("results/eval/{variant}", variant=VARIANTS),
    output:
        report(
            "reports/ablation.md",
            caption="../report/ablation.rst",
            category="Ablation (Table 2)",
        ),
        "reports/ablation.csv",
        "reports/ablation.tex",
        "reports/per_landmark.csv",
        "reports/metrics.json",
    params:
        stage="ablation",
    log:
        "results/logs/ablation.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/ablation.py --evaluations results/eval --out reports --log {log}"


rule figures:
    input:
        snapshot("figures"),
        dataset="data/dataset",
        splits="data/splits.csv",
        evaluations=expand("results/eval/{variant}", variant=VARIANTS),
        finetuned=expand("results/finetune/{variant}", variant=VARIANTS),
        pretrained=expand("results/pretrain/{method}", method=PRETRAIN_METHODS),
    output:
        report(
            directory("reports/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        stage="figures",
    log:
        "results/logs/figures.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/figures.py --dataset {input.dataset} --splits {input.splits}"
        " --evaluations results/eval --finetuned results/finetune --pretrained results/pretrain"
        " --out {output} --log {log}"


rule provenance:
    input:
        snapshot("provenance"),
        dataset="data/dataset",
        metrics="reports/metrics.json",
        figures="reports/figures",
    output:
        report("reports/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    params:
        stage="provenance",
    log:
        "results/logs/provenance.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/provenance.py --dataset {input.dataset} --logs results/timings"
        " --out {output} --log {log}"
