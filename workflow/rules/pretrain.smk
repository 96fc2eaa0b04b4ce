rule pretrain:
    input:
        snapshot("pretrain"),
        pool="results/filter",
    output:
        directory("results/pretrain/{method}/seed{seed}"),
    params:
        checkpoints="results/checkpoints/pretrain/{method}/seed{seed}",
    log:
        "results/logs/pretrain/{method}/seed{seed}.log",
    threads: THREADS
    resources:
        gpu=gpus_per_job(),
    conda:
        ENV
    shell:
        "iugc stage pretrain --method {wildcards.method} --seed {wildcards.seed} --pool {input.pool}"
        " --checkpoints {params.checkpoints} --out {output} --log {log}"
