from pudding.client.cli import main

main()
