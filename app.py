#!/usr/bin/env python3
"""TranscodeX CDK app: ``npx cdk synth`` / ``npx cdk deploy`` (see README, "Deploying to AWS").

cdk-nag's AwsSolutions pack is applied in create_app() (stacks/app.py) through
``Validations.of(app).add_plugins(AwsSolutionsChecks(app))``: any unacknowledged
finding fails the synth and is written to the assembly's validation report.
Set TRANSCODEX_SKIP_BUNDLING=1 to synthesize without Docker (never for deploys).
"""

from stacks import create_app

app, _stack = create_app()
app.synth()
