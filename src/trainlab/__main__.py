from trainlab.cli.main import run

run()
