from gantry.verifier.metaeval.cli import main

main()
