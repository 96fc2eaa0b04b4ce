# A fine-tuned model's confidence, calibrated on the validation split, then the model and its
# confidence scored on the held-out test split.
rule calibrate:
    input:
        snapshot("calibrate"),
        dataset="data/dataset",
        split="results/split",
        model="results/finetune/{variant}/seed{seed}",
    output:
        directory("results/calibrate/{variant}/seed{seed}"),
    log:
        "results/logs/calibrate/{variant}/seed{seed}.log",
    threads: THREADS
    resources:
        gpu=gpus_per_job(),
    conda:
        ENV
    shell:
        "iugc stage calibrate --variant {wildcards.variant} --seed {wildcards.seed} --dataset {input.dataset}"
        " --split {input.split} --model {input.model} --out {output} --log {log}"


rule evaluate:
    input:
        snapshot("evaluate"),
        dataset="data/dataset",
        split="results/split",
        model="results/finetune/{variant}/seed{seed}",
        calibration="results/calibrate/{variant}/seed{seed}",
    output:
        directory("results/eval/{variant}/seed{seed}"),
    log:
        "results/logs/evaluate/{variant}/seed{seed}.log",
    threads: THREADS
    resources:
        gpu=gpus_per_job(),
    conda:
        ENV
    shell:
        "iugc stage evaluate --variant {wildcards.variant} --seed {wildcards.seed} --dataset {input.dataset}"
        " --split {input.split} --model {input.model} --calibration {input.calibration} --out {output} --log {log}"
