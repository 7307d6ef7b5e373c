from agentbus.cli import main

main()
