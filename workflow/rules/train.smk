# The demo model: a small IR network trained with the AdaFace margin head on the dataset,
# saved in the official AdaFace checkpoint layout and loaded like any user checkpoint.


rule train_demo_model:
    input:
        manifest=rules.make_manifest.output.table,
    output:
        model_file=f"{RESULTS}/models/{{model}}/checkpoint.ckpt",
    log:
        f"{RESULTS}/logs/train_demo_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_demo_model/{{model}}.tsv"
    conda:
        "../../envs/featnorm.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        arch=model_arch,
        epochs=config["train"]["epochs"],
        batch_size=config["train"]["batch_size"],
        lr=config["train"]["lr"],
        seed=config["train"]["seed"],
    shell:
        "python -m featnorm train-demo --manifest {input.manifest} --arch {params.arch}"
        " --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --seed {params.seed} --threads {threads} --output {output.model_file} --log {log}"
