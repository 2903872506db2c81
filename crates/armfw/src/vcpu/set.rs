//! KVM_SET_ONE_REG on the model: the id and size checks, then each class's rule
//! ([`super::rules`]).

use super::VcpuModel;
use super::rules::{self, IdCheck, Kind, SveReg, SysRule};
use crate::abi::vcpu_reg::{PTIMER_CNT, PTIMER_CTL, TIMER_CNT, TIMER_CTL, sysreg_id};
use crate::abi::{CpuFeature, Errno, OneRegId};

impl VcpuModel {
    /// KVM_SET_ONE_REG of a non-firmware id on `vcpu` from `data`, which has the id's size
    /// (else EINVAL, as [`VcpuModel::get_into`]).
    pub fn set(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<(), Errno> {
        if data.len() != OneRegId(id).size_bytes() {
            return Err(Errno::EINVAL);
        }
        let value = crate::json::le_u64(data);
        if let Some(pos) = self.listed(id) {
            if self.t.slots[pos].plain_set {
                // A listed register whose SET stores any value.
                if let Some(regs) = self.values.get_mut(vcpu) {
                    regs[pos].write(data);
                }
                return Ok(());
            }
            if self.t.slots[pos].sys.is_some() {
                // A listed system register: its rule.
                return self.sys_set(vcpu, id, pos, value, data);
            }
        }
        // What is left: ids the host does not list (KVM's errno), and the registers of the
        // other classes whose SET has a rule.
        match rules::kind(id, self.t.release) {
            Kind::NotArm64 => Err(Errno::EINVAL),
            Kind::Firmware => Err(Errno::ENOENT),
            Kind::Core => {
                let off = rules::core_check(id, self.t.features.has(CpuFeature::Sve))?;
                if off == rules::CORE_PSTATE && !rules::pstate_ok(value, self.t.aarch32_el0) {
                    return Err(Errno::EINVAL);
                }
                self.store(vcpu, id, data);
                Ok(())
            }
            Kind::Sve => match rules::sve_reg(id, self.t.features.has(CpuFeature::Sve), self.t.vq)?
            {
                // Set-up finalizes every SVE vCPU.
                SveReg::Vls => Err(Errno::EPERM),
                SveReg::Data { kept } => {
                    let mut buf = data.to_vec();
                    buf.iter_mut().skip(kept).for_each(|b| *b = 0);
                    self.store(vcpu, id, &buf);
                    Ok(())
                }
            },
            Kind::Timer => {
                match id {
                    // arch_timer_set_user(): no effect once the VM's offset was set.
                    TIMER_CNT | PTIMER_CNT if self.counter_offset_set => {}
                    TIMER_CNT => self.counters[0] = Some(value),
                    PTIMER_CNT => self.counters[1] = Some(value),
                    // kvm_arm_timer_write(): ISTATUS is read-only.
                    TIMER_CTL | PTIMER_CTL => {
                        self.store(vcpu, id, &(value & !4).to_le_bytes());
                    }
                    _ => self.store(vcpu, id, data),
                }
                Ok(())
            }
            Kind::Demux => {
                self.listed(id).ok_or(Errno::ENOENT)?;
                let current = self.u64_of(vcpu, id);
                if !self.t.release.at_least(6, 3) {
                    return if value == current {
                        Ok(())
                    } else {
                        Err(Errno::EINVAL)
                    };
                }
                let ctr = self.host_u64(sysreg_id(3, 3, 0, 0, 1));
                let v32 = u32::try_from(value).unwrap_or(u32::MAX);
                rules::ccsidr_set(id & 0xff, v32, ctr)?;
                self.store(vcpu, id, data);
                Ok(())
            }
            // Listed system registers went to their rule above.
            Kind::SysReg => match rules::invariant_alias(id, self.t.release) {
                Some(sys) if value == self.host_u64(sys) => Ok(()),
                Some(_) => Err(Errno::EINVAL),
                None => Err(Errno::ENOENT),
            },
        }
    }

    #[inline(always)]
    fn id_check(&self, vcpu: usize, pos: usize) -> IdCheck {
        let slot = &self.t.slots[pos];
        IdCheck {
            release: self.t.release,
            limit: slot.limit,
            current: self.word_at(vcpu, pos),
            writable: slot.writable,
            checked: slot.checked,
            has_run: self.has_run,
            raz: slot.raz,
            write_ignored: slot.write_ignored,
            fields: slot.fields,
            special: slot.special,
        }
    }

    fn sys_set(
        &mut self,
        vcpu: usize,
        id: u64,
        pos: usize,
        value: u64,
        data: &[u8],
    ) -> Result<(), Errno> {
        let slot = &self.t.slots[pos];
        match slot.sys.unwrap_or(SysRule::Plain) {
            SysRule::IdReg => {
                if !slot.write_ignored
                    && rules::takes_host_value(self.t.release, self.has_run, slot.limit, value)
                {
                    self.vm_wide[pos] = Some(value);
                    return Ok(());
                }
                let c = self.id_check(vcpu, pos);
                let stored = rules::id_set(&c, value)?;
                if !c.write_ignored {
                    self.vm_wide[pos] = Some(stored);
                }
                Ok(())
            }
            SysRule::ImpId => {
                let c = self.id_check(vcpu, pos);
                rules::imp_set(&c, self.t.imp_writable, value)?;
                self.vm_wide[pos] = Some(value);
                Ok(())
            }
            SysRule::Ctr => {
                let c = self.id_check(vcpu, pos);
                if self.t.release.at_least(6, 11) {
                    rules::id_set(&c, value)?;
                } else if value != c.current {
                    return Err(Errno::EINVAL);
                }
                self.vm_wide[pos] = Some(value);
                Ok(())
            }
            SysRule::Clidr => {
                if !self.t.release.at_least(6, 3) {
                    return if value == self.u64_of(vcpu, id) {
                        Ok(())
                    } else {
                        Err(Errno::EINVAL)
                    };
                }
                let ctr = self.host_u64(sysreg_id(3, 3, 0, 0, 1));
                rules::clidr_set(value, ctr)?;
                self.store(vcpu, id, data);
                Ok(())
            }
            // Before 6.7 (measured on 6.1) the PMU registers store what is written.
            SysRule::Pmcr | SysRule::PmuSetClr { .. } if !self.t.release.at_least(6, 7) => {
                self.store(vcpu, id, data);
                Ok(())
            }
            SysRule::Pmcr => {
                // set_pmcr(): only N (when it fits the host and the VM has not run) and bits
                // 7:0 are kept; LC (bit 6) is RES1 without AArch32.
                let cur = self.u64_of(vcpu, id);
                let host_n = self.host_u64(id) >> 11 & 0x1f;
                let new_n = value >> 11 & 0x1f;
                let n = if !self.has_run && new_n <= host_n {
                    new_n
                } else {
                    cur >> 11 & 0x1f
                };
                let mut v = value & 0xff;
                if !self.t.aarch32_el0 {
                    v |= 1 << 6;
                }
                v |= n << 11;
                for c in 0..self.values.len() {
                    let keep = self.u64_of(c, id) & !(0x1f << 11);
                    let mine = if c == vcpu { v } else { keep | n << 11 };
                    self.store(c, id, &mine.to_le_bytes());
                }
                Ok(())
            }
            SysRule::PmuSetClr { holder, set } => {
                let mask = self.pmu_mask(vcpu);
                let cur = self.u64_of(vcpu, holder);
                let new = if set {
                    cur | (value & mask)
                } else {
                    cur & !(value & mask)
                };
                self.store(vcpu, holder, &new.to_le_bytes());
                Ok(())
            }
            SysRule::Plain => {
                if let Some(regs) = self.values.get_mut(vcpu) {
                    regs[pos].write(data);
                }
                Ok(())
            }
        }
    }
}
