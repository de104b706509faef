"""Acting on alerts from chat: Telegram and Slack buttons, and who in chat is whom."""
