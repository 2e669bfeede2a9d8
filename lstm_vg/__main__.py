from lstm_vg.cli import main

main()
