from keymoment.cli import main

raise SystemExit(main())
