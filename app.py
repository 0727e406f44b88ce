#!/usr/bin/env python3
"""TranscodeX CDK app: ``npx cdk synth`` / ``npx cdk deploy`` (see README, "Deploying to AWS").

Set TRANSCODEX_SKIP_BUNDLING=1 to synthesize without Docker (never for deploys: the
template then refuses deployment).
"""

from stacks import apply_policy_checks, create_app

app, _stack = create_app()
# cdk-nag v3: Validations.of(app).add_plugins(AwsSolutionsChecks(app)). Any unacknowledged
# finding fails the synth and is written to the assembly's validation-report.json.
apply_policy_checks(app)
app.synth()
