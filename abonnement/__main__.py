from abonnement.cli import main

main()
