from targets.upstream.app import main

raise SystemExit(main())
