from orderfast.cli import main

raise SystemExit(main())
