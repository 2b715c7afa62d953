"""burstbus.bridges.slack: notices to Slack channels, one thread per burst (slack-sdk)."""
