"""Pure renderers of node and light-wallet configuration: no Pulumi, callable from tests."""
