from casefold.cli import main

main()
