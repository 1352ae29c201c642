from homelabpi.cli import main

main()
