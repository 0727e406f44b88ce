#!/usr/bin/env python3
"""TranscodeX CDK app: ``npx cdk synth`` / ``npx cdk deploy`` (see README, "Deploying to AWS").

Set TRANSCODEX_SKIP_BUNDLING=1 to synthesize without Docker (never for deploys: the
template then refuses deployment).
"""

from scripts.jsii_node import use_pinned_node

use_pinned_node()  # Node 24 from package.json for the jsii kernel, before aws_cdk starts it

from stacks import apply_policy_checks, create_app  # noqa: E402

app, _stack = create_app()
# cdk-nag v3: Validations.of(app).add_plugins(AwsSolutionsChecks(app)). Any unacknowledged
# finding fails the synth and is written to the assembly's validation-report.json.
apply_policy_checks(app)
app.synth()
