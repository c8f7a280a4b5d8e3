from llavero.cli import main

main()
