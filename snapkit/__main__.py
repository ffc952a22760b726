from snapkit.cli import main

main(prog_name="snapkit")
