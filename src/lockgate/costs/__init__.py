"""What a task may spend: prices, budgets that reserve a call's worst-case cost before it is
made and settle the real cost after, and the decision cache."""
