rule pretrain:
    input:
        snapshot("pretrain"),
        pool="data/pretrain_pool.csv",
    output:
        directory("results/pretrain/{method}"),
    params:
        stage="pretrain",
        wildcard=lambda wildcards: wildcards.method,
    log:
        "results/logs/pretrain@{method}.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/pretrain.py {wildcards.method} --pool {input.pool} --out {output} --log {log}"
