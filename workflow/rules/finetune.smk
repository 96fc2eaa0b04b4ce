rule finetune:
    input:
        unpack(encoder_of),
        snapshot("finetune"),
        dataset="data/dataset",
        splits="data/splits.csv",
    output:
        directory("results/finetune/{variant}"),
    params:
        stage="finetune",
        wildcard=lambda wildcards: wildcards.variant,
        encoder=encoder_arg,
    log:
        "results/logs/finetune@{variant}.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/finetune.py {wildcards.variant} --dataset {input.dataset}"
        " --splits {input.splits} {params.encoder} --out {output} --log {log}"


rule evaluate:
    input:
        snapshot("evaluate"),
        dataset="data/dataset",
        splits="data/splits.csv",
        model="results/finetune/{variant}",
    output:
        directory("results/eval/{variant}"),
    params:
        stage="evaluate",
        wildcard=lambda wildcards: wildcards.variant,
    log:
        "results/logs/evaluate@{variant}.log",
    conda:
        ENV
    shell:
        "python workflow/scripts/evaluate.py {wildcards.variant} --dataset {input.dataset}"
        " --splits {input.splits} --model {input.model} --out {output} --log {log}"
