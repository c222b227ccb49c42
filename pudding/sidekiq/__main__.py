from pudding.sidekiq.cli import main

main(prog_name="pudding.sidekiq")
