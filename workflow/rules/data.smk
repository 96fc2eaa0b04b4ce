rule obtain:
    input:
        snapshot("obtain"),
        source_root(),
    output:
        directory("data/dataset"),
    params:
        stage="obtain",
    log:
        "results/logs/obtain.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/obtain.py --out {output} --log {log}"


rule validate:
    input:
        snapshot("validate"),
        dataset="data/dataset",
    output:
        "results/data/validation.json",
    params:
        stage="validate",
    log:
        "results/logs/validate.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/validate.py --dataset {input.dataset} --out {output} --log {log}"


rule split:
    input:
        snapshot("split"),
        dataset="data/dataset",
        validation="results/data/validation.json",
    output:
        "data/splits.csv",
    params:
        stage="split",
    log:
        "results/logs/split.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/split.py --dataset {input.dataset} --validation {input.validation}"
        " --out {output} --log {log}"


rule filter:
    input:
        snapshot("filter"),
        dataset="data/dataset",
        splits="data/splits.csv",
    output:
        pool="data/pretrain_pool.csv",
        report=directory("results/filter"),
    params:
        stage="filter",
    log:
        "results/logs/filter.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/filter.py --dataset {input.dataset} --splits {input.splits}"
        " --pool {output.pool} --out {output.report} --log {log}"
