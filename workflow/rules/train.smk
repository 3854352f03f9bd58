# The demo model: a small IR network trained with the AdaFace margin head on the dataset's
# training split, saved in the official AdaFace checkpoint layout and loaded like any user
# checkpoint. Each model's settings are the global `train:` block under its own `train:` block.


rule train_demo_model:
    input:
        manifest=rules.make_manifest.output.table,
    output:
        model_file=f"{RESULTS}/models/{{model}}/checkpoint.ckpt",
        curve=f"{RESULTS}/models/{{model}}/training_curve.csv",
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
        epochs=train_epochs,
        batch_size=train_batch_size,
        lr=train_lr,
        seed=train_seed,
        precision=train_precision,
    shell:
        "python -m featnorm train-demo --manifest {input.manifest} --arch {params.arch}"
        " --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --seed {params.seed} --precision {params.precision} --threads {threads}"
        " --output {output.model_file} --curve {output.curve} --log {log}"
