rule finetune:
    input:
        snapshot("finetune"),
        unpack(pretrained_encoder),
        dataset="data/dataset",
        split="results/split",
    output:
        directory("results/finetune/{variant}/seed{seed}"),
    params:
        encoder=option("encoder"),
        checkpoints="results/checkpoints/finetune/{variant}/seed{seed}",
    log:
        "results/logs/finetune/{variant}/seed{seed}.log",
    threads: THREADS
    resources:
        gpu=gpus_per_job(),
    conda:
        ENV
    shell:
        "iugc stage finetune --variant {wildcards.variant} --seed {wildcards.seed} --dataset {input.dataset}"
        " --split {input.split} {params.encoder} --checkpoints {params.checkpoints} --out {output} --log {log}"

