from gantry.verifier.metaeval.cli import run_main

run_main()
