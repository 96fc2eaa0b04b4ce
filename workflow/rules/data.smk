rule obtain:
    input:
        snapshot("obtain"),
        unpack(data_source),
    output:
        directory("data/dataset"),
    params:
        source=option("source"),
    log:
        "results/logs/obtain.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage obtain {params.source} --out {output} --log {log}"


rule validate:
    input:
        snapshot("validate"),
        dataset="data/dataset",
    output:
        directory("results/validate"),
    log:
        "results/logs/validate.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage validate --dataset {input.dataset} --out {output} --log {log}"


rule split:
    input:
        snapshot("split"),
        dataset="data/dataset",
        validation="results/validate",
    output:
        directory("results/split"),
    log:
        "results/logs/split.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage split --dataset {input.dataset} --validation {input.validation} --out {output} --log {log}"


rule filter:
    input:
        snapshot("filter"),
        dataset="data/dataset",
        split="results/split",
    output:
        directory("results/filter"),
    log:
        "results/logs/filter.log",
    threads: THREADS
    conda:
        ENV
    shell:
        "iugc stage filter --dataset {input.dataset} --split {input.split} --out {output} --log {log}"
