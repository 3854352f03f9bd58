# The demo model: a small IR network trained with the AdaFace margin head on the dataset's
# training split, saved in the official AdaFace checkpoint layout and loaded like any user
# checkpoint. Each model's settings are the global `train:` block under its own `train:` block.


rule train_demo_model:
    input:
        manifest=rules.make_manifest.output.table,
    output:
        model_file=trained_checkpoint(),
        curve=training_curve(),
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
        augment_prob=train_augment_prob,
    shell:
        "$FEATNORM_PYTHON -m featnorm train-demo --manifest {input.manifest:q} --arch {params.arch}"
        " --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --seed {params.seed} --precision {params.precision} --threads {threads}"
        " --augment-prob {params.augment_prob}"
        " --output {output.model_file:q} --curve {output.curve:q} > {log:q} 2>&1"


# The training-length experiment: with trained models of two or more lengths (docs/training_length.yaml),
# their class-size effect and proxy agreement side by side against the epochs they trained for.
rule training_length:
    input:
        correlations=model_tables("correlations", trained_models()),
        curves=trained_model_curves(),
    output:
        table=study_file("training_length.csv"),
        png=report(
            study_figure("training_length", "png"),
            caption="../report/training_length.rst",
            category="comparison",
            labels={"figure": "training length"},
        ),
        svg=study_figure("training_length", "svg"),
    log:
        f"{RESULTS}/logs/training_length.log",
    benchmark:
        f"{RESULTS}/benchmarks/training_length.tsv"
    conda:
        "../../envs/featnorm.yaml"
    params:
        models=" ".join(trained_models()),
        epochs=" ".join(str(e) for e in trained_model_epochs()),
        method=training_length_method(),
        confidence=config["analysis"]["confidence"],
    shell:
        "$FEATNORM_PYTHON -m featnorm training-length --models {params.models}"
        " --epochs {params.epochs} --correlations {input.correlations:q}"
        " --curves {input.curves:q} --method {params.method}"
        " --confidence {params.confidence} --output {output.table:q}"
        " --png {output.png:q} --svg {output.svg:q} > {log:q} 2>&1"
