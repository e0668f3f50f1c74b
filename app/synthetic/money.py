"""A synthetic customer's money: salary, card spend, bills, transfers and loans.

Every movement goes through one running balance, so ``balance_after`` is always consistent
and a debit beyond the overdraft limit is declined, as a bank would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeAlias

from app.synthetic.catalogue import BILLERS, EMPLOYERS, ONLINE_MERCHANTS, PEOPLE
from app.synthetic.state import DAY, HOUR, SALARY, CustomerState
from schemas.events import Transaction

Direction: TypeAlias = Literal["credit", "debit"]


class Banking(CustomerState):
    """Movements on the customer's account, one episode each."""

    __slots__ = ()

    def _pay_times(self) -> Iterator[float]:
        """Salary moments in seconds since start.

        Windows shorter than a month get exactly one pay moment, uniform in the window, so a
        one-day demo still sees salaries; longer windows follow the calendar (pay day 24-28,
        early morning local time, as payroll batches are).
        """
        rng = self.rng
        if self.horizon < 30 * DAY:
            yield rng.uniform(0.0, self.horizon)
            return
        pay_day = rng.randint(24, 28)
        hour = rng.randint(4, 7)
        local = self.start.astimezone(self.zone)
        year, month = local.year, local.month
        while True:
            moment = datetime(year, month, pay_day, hour, tzinfo=self.zone)
            offset = (moment - self.start).total_seconds() + rng.uniform(0, HOUR)
            if offset >= self.horizon:
                return
            if offset >= 0:
                yield offset
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def _transaction(
        self, t: float, cents: int, direction: Direction, category: str, counterparty: str
    ) -> None:
        """Post a movement: update the running balance and queue the event."""
        self.balance += cents if direction == "credit" else -cents
        occurred_at = self._time(t)
        transaction = Transaction(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            amount=Decimal(cents).scaleb(-2),
            currency=self.currency,
            direction=direction,
            category=category,
            counterparty=counterparty,
            balance_after=Decimal(self.balance).scaleb(-2),
        )
        self._emit(t, transaction, occurred_at)

    def _can_pay(self, cents: int) -> bool:
        """A debit beyond the overdraft limit is declined and never posted."""
        return cents <= self.balance + self.overdraft

    def _card_purchase(self, t: float) -> None:
        rng = self.rng
        online = rng.random() < 0.3
        merchant = rng.choice(ONLINE_MERCHANTS if online else self.merchants)
        cents = max(50, int(rng.lognormvariate(self.spend_mu, 0.9) * 100))
        cents = min(cents, 250_000)
        if self._can_pay(cents):
            self._transaction(t, cents, "debit", "card_purchase", merchant)

    def _direct_debit(self, t: float) -> None:
        rng = self.rng
        cents = int(rng.uniform(15, 180) * 100)
        if self._can_pay(cents):
            biller = f"DIRECT DEBIT {rng.choice(BILLERS)}"
            self._transaction(t, cents, "debit", "direct_debit", biller)

    def _transfer_in(self, t: float) -> None:
        rng = self.rng
        cents = int(rng.lognormvariate(math.log(150), 1.0) * 100) + 100
        self._transaction(t, cents, "credit", "transfer_in", f"FROM {rng.choice(PEOPLE)}")

    def _transfer_out(self, t: float) -> None:
        rng = self.rng
        cents = int(rng.lognormvariate(math.log(120), 1.0) * 100) + 100
        if self._can_pay(cents):
            who = f"TO {rng.choice(PEOPLE)}"
            self._transaction(t, cents, "debit", "transfer_out", who)

    def _large_outflow(self, t: float) -> None:
        """Money leaving for another bank: the churn signal the retention rules watch."""
        ceiling = min(50_000.0, 0.9 * self.balance / 100)
        if ceiling >= 5_000:
            cents = int(self.rng.uniform(5_000, ceiling) * 100)
            self._transaction(t, cents, "debit", "transfer_out", self._other_bank())

    def _preapproved_loan(self, t: float) -> None:
        """A pre-approved loan drawn without an application."""
        cents = int(self.rng.uniform(1_000, 6_000) * 100)
        self._transaction(t, cents, "credit", "loan_disbursement", "PRE-APPROVED LOAN")

    def _loan_payout(self, t: float, cents: int) -> None:
        """The payout of a completed personal loan application."""
        self._transaction(t, cents, "credit", "loan_disbursement", "PERSONAL LOAN")

    def _salary(self, t: float) -> None:
        """Pay this month's salary (with a little variation) and book the next one."""
        rng = self.rng
        cents = int(self.salary * rng.uniform(0.97, 1.03))
        senior = "senior" in self.profile.tags
        payer = "PENSION FUND" if senior else rng.choice(EMPLOYERS)
        label = "NOMINA" if self.profile.language == "es" else "SALARY"
        self._transaction(t, cents, "credit", "salary", f"{label} {payer}")
        following = next(self.salary_times, None)
        if following is not None:
            self._schedule(following, SALARY)

    def _other_bank(self) -> str:
        """A plausible IBAN at another bank (digits random, not checksum-valid)."""
        digits = "".join(str(self.rng.randrange(10)) for _ in range(20))
        groups = " ".join(digits[i : i + 4] for i in range(0, 20, 4))
        return f"OTHERBANK {self.iban_cc}{self.rng.randint(10, 99)} {groups}"
